"""pyroute2 message classes, completed and fixed where 0.9.7 falls short.

Nothing here is monkeypatched: each fix is a subclass, so other users of
pyroute2 in the same process are unaffected.  The additions are:

* attribute types newer than pyroute2's tables (IFLA 62-69, RTA 24-31,
  TCA 9-16, FRA 25-27), a few wrong types (RTA_EXPIRES, IFA_TARGET_NETNSID,
  INET_DIAG_TOS/TCLASS/SKMEMINFO...), NDA_FDB_EXT_ATTRS (pyroute2 decodes it
  as a whole ndmsg) and IFLA_PROTINFO outside AF_BRIDGE (KeyError);
* RTA_ENCAP's class selector, which can loop forever on malformed input;
* tcp_info's bit fields (snd/rcv wscale are both taken from the low nibble)
  and its length (older kernels send a shorter struct);
* messages pyroute2 lacks: extended-ack TLVs with POLICY/MISS_TYPE/MISS_NEST,
  netlink_diag and packet_diag, nexthop (nhmsg), netconf, tc actions
  (tcamsg), address labels, prefixes, mdb, the inet_diag request attributes.
"""
import base64
import socket as _s
import struct

from pyroute2.netlink import ctrlmsg, nla, nla_string, nlmsg
from pyroute2.netlink.diag import (inet_diag_msg, inet_diag_req,
                                   unix_diag_msg, unix_diag_req)
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import nh, rtmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from .engine import ATTR_OVERRIDES, EXTRA_NAMES, addr_text, own_nla_map, partial_fields
from .secret import Secret
from .names import AF_NAMES, IPPROTO_NAMES, bits


def _explicit(nla_map):
    items = []
    for i, item in enumerate(nla_map):
        item = tuple(item)
        if isinstance(item[0], int):
            items.append(item)
        else:
            items.append((i,) + item)
    return items


def derive(base, name, extra=(), **namespace):
    """Subclass ``base`` with (type, NAME, class) entries added/replaced."""
    by_type = {}
    order = []
    for item in _explicit(base.nla_map) if base.nla_map else ():
        # fibmsg-style maps may list one type twice (aliases): keep the first
        if item[0] not in by_type:
            order.append(item[0])
        by_type.setdefault(item[0], item)
    for item in extra:
        if item[0] not in by_type:
            order.append(item[0])
        by_type[item[0]] = item
    namespace["nla_map"] = tuple(by_type[t] for t in sorted(order))
    namespace.setdefault("__module__", __name__)
    return type(name, (base,), own_nla_map(namespace))


# -- atoms ------------------------------------------------------------------
class uintv(nla_string):
    """NLA_UINT: 1, 2, 4 or 8 bytes, host order."""

    def decode(self):
        nla_string.decode(self)
        raw = self["value"]
        if len(raw) not in (1, 2, 4, 8):
            raise ValueError("NLA_UINT of %d bytes" % len(raw))
        self.value = int.from_bytes(raw, "little")


class pstruct(nla):
    """A struct attribute that may be shorter (older kernel) or longer
    (newer kernel) than declared: the fields that fit are decoded."""
    fields = ()

    def decode(self):
        hlen = struct.unpack_from("=H", self.data, self.offset)[0]
        self.length = hlen
        self.update(partial_fields(type(self), self.data, self.offset + 4,
                                   self.offset + max(hlen, 4)))
        self.decoded = True


class skmeminfo(pstruct):
    """SK_MEMINFO_VARS (include/uapi/linux/sock_diag.h)."""
    fields = tuple((n, "I") for n in (
        "rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc",
        "wmem_queued", "optmem", "backlog", "drops"))


class u32list(nla_string):
    def decode(self):
        nla_string.decode(self)
        raw = self["value"]
        n = len(raw) // 4
        self.value = list(struct.unpack_from("=%dI" % n, raw)) if n else []


class bitfield32(nla):
    fields = (("value", "I"), ("selector", "I"))

    def decode(self):
        nla.decode(self)
        self.value = {"value": self["value"], "selector": self["selector"]}


class unix_name(nla_string):
    """UNIX_DIAG_NAME: abstract names start with NUL, shown as '@' like ss."""

    def decode(self):
        nla_string.decode(self)
        raw = bytes(self["value"])
        if raw[:1] == b"\0":
            self.value = "@" + raw[1:].decode("utf-8", "replace")
        else:
            self.value = raw.split(b"\0", 1)[0].decode("utf-8", "replace")


# -- route ------------------------------------------------------------------
def _encap_type(self, data, offset):
    """RTA_ENCAP_TYPE of the container, found without unbounded walking."""
    for slot in dict.get(self, "attrs") or ():
        try:
            inst = slot.cell[1]
            hlen, rtype = struct.unpack_from("=HH", inst.data, inst.offset)
            if rtype & 0x3FFF == 21 and hlen >= 6:
                return struct.unpack_from("=H", inst.data, inst.offset + 4)[0]
        except Exception:
            continue
    if data is None or offset is None:
        return None
    end = min(len(data), self.offset + (self.length or 0))
    off = offset
    while off + 4 <= end:
        hlen, rtype = struct.unpack_from("=HH", data, off)
        if hlen < 4:
            return None
        if rtype & 0x3FFF == 21 and hlen >= 6 and off + 6 <= end:
            return struct.unpack_from("=H", data, off + 4)[0]
        off += (hlen + 3) & ~3
    return None


def _safe_encap_info(self, *argv, **kwarg):
    kind = _encap_type(self, kwarg.get("data"), kwarg.get("offset"))
    return self.encaps.get(kind, self.hex)


_RTA_EXTRA = (
    (23, "RTA_EXPIRES", "uint32"),
    (24, "RTA_PAD", "hex"),
    (25, "RTA_UID", "uint32"),
    (26, "RTA_TTL_PROPAGATE", "uint8"),
    (27, "RTA_IP_PROTO", "uint8"),
    (28, "RTA_SPORT", "be16"),
    (29, "RTA_DPORT", "be16"),
    (30, "RTA_NH_ID", "uint32"),
    (31, "RTA_FLOWLABEL", "be32"),
)

nh_x = derive(nh, "nh_x", _RTA_EXTRA,
              encap_info=staticmethod(_safe_encap_info))


def _get_nh(self, *argv, **kwarg):
    return nh_x


rtmsg_x = derive(rtmsg, "rtmsg_x", _RTA_EXTRA,
                 encap_info=staticmethod(_safe_encap_info),
                 get_nh=staticmethod(_get_nh))


def _protinfo(self, *argv, **kwarg):
    try:
        return ifinfmsg.protinfo(self, *argv, **kwarg)
    except Exception:
        return self.hex


ifinfmsg_x = derive(ifinfmsg, "ifinfmsg_x", (
    (62, "IFLA_DEVLINK_PORT", "hex"),
    (63, "IFLA_GSO_IPV4_MAX_SIZE", "uint32"),
    (64, "IFLA_GRO_IPV4_MAX_SIZE", "uint32"),
    (65, "IFLA_DPLL_PIN", "hex"),
    (66, "IFLA_MAX_PACING_OFFLOAD_HORIZON", "uintv"),
    (67, "IFLA_NETNS_IMMUTABLE", "uint8"),
    (68, "IFLA_HEADROOM", "uint16"),
    (69, "IFLA_TAILROOM", "uint16"),
), uintv=uintv, protinfo=staticmethod(_protinfo))

ifaddrmsg_x = derive(ifaddrmsg, "ifaddrmsg_x", (
    (10, "IFA_TARGET_NETNSID", "int32"),
))


class fdb_ext_attrs(nla):
    nla_map = (
        ("NFEA_UNSPEC", "none"),
        ("NFEA_ACTIVITY_NOTIFY", "uint8"),
        ("NFEA_DONT_REFRESH", "flag"),
    )


ndmsg_x = derive(ndmsg, "ndmsg_x", (
    (14, "NDA_FDB_EXT_ATTRS", "fdb_ext_attrs"),
), fdb_ext_attrs=fdb_ext_attrs)

fibmsg_x = derive(fibmsg, "fibmsg_x", (
    (25, "FRA_DSCP", "uint8"),
    (26, "FRA_FLOWLABEL", "be32"),
    (27, "FRA_FLOWLABEL_MASK", "be32"),
))

tcmsg_x = derive(tcmsg, "tcmsg_x", (
    (9, "TCA_PAD", "hex"),
    (10, "TCA_DUMP_INVISIBLE", "flag"),
    (11, "TCA_CHAIN", "uint32"),
    (12, "TCA_HW_OFFLOAD", "uint8"),
    (13, "TCA_INGRESS_BLOCK", "uint32"),
    (14, "TCA_EGRESS_BLOCK", "uint32"),
    (15, "TCA_DUMP_FLAGS", "bitfield32"),
    (16, "TCA_EXT_WARN_MSG", "asciiz"),
), bitfield32=bitfield32)


class nhmsg(nlmsg):
    """Nexthop objects (RTM_*NEXTHOP*, include/uapi/linux/nexthop.h)."""
    prefix = "NHA_"
    fields = (("family", "B"), ("scope", "B"), ("protocol", "B"),
              ("__resvd", "B"), ("flags", "I"))
    nla_map = (
        (0, "NHA_UNSPEC", "none"),
        (1, "NHA_ID", "uint32"),
        (2, "NHA_GROUP", "nh_group"),
        (3, "NHA_GROUP_TYPE", "uint16"),
        (4, "NHA_BLACKHOLE", "flag"),
        (5, "NHA_OIF", "uint32"),
        (6, "NHA_GATEWAY", "target"),
        (7, "NHA_ENCAP_TYPE", "uint16"),
        (8, "NHA_ENCAP", "hex"),
        (9, "NHA_GROUPS", "flag"),
        (10, "NHA_MASTER", "uint32"),
        (11, "NHA_FDB", "flag"),
        (12, "NHA_RES_GROUP", "hex"),
        (13, "NHA_RES_BUCKET", "hex"),
        (14, "NHA_OP_FLAGS", "uint32"),
        (15, "NHA_GROUP_STATS", "hex"),
        (16, "NHA_HW_STATS_ENABLE", "uint32"),
        (17, "NHA_HW_STATS_USED", "uint32"),
    )

    class nh_group(nla_string):
        """struct nexthop_grp[]: id u32, weight u8, weight_high u8."""

        def decode(self):
            nla_string.decode(self)
            raw = self["value"]
            out = []
            for i in range(len(raw) // 8):
                nid, w, wh, _ = struct.unpack_from("=IBBH", raw, i * 8)
                out.append({"id": nid, "weight": (w | (wh << 8)) + 1})
            self.value = out


class netconfmsg(nlmsg):
    prefix = "NETCONFA_"
    fields = (("family", "B"), ("__pad", "3x"))
    nla_map = (
        (0, "NETCONFA_UNSPEC", "none"),
        (1, "NETCONFA_IFINDEX", "int32"),
        (2, "NETCONFA_FORWARDING", "int32"),
        (3, "NETCONFA_RP_FILTER", "int32"),
        (4, "NETCONFA_MC_FORWARDING", "int32"),
        (5, "NETCONFA_PROXY_NEIGH", "int32"),
        (6, "NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN", "int32"),
        (7, "NETCONFA_INPUT", "int32"),
        (8, "NETCONFA_BC_FORWARDING", "int32"),
    )


class tcamsg(nlmsg):
    prefix = "TCA_ROOT_"
    fields = (("family", "B"), ("__pad1", "B"), ("__pad2", "H"))
    nla_map = (
        (0, "TCA_ROOT_UNSPEC", "none"),
        (1, "TCA_ROOT_TAB", "hex"),
        (2, "TCA_ROOT_FLAGS", "bitfield32"),
        (3, "TCA_ROOT_COUNT", "uint32"),
        (4, "TCA_ROOT_TIME_DELTA", "uint32"),
        (5, "TCA_ROOT_EXT_WARN_MSG", "asciiz"),
    )
    bitfield32 = bitfield32


class ifaddrlblmsg(nlmsg):
    prefix = "IFAL_"
    fields = (("family", "B"), ("__pad", "B"), ("prefixlen", "B"),
              ("flags", "B"), ("index", "I"), ("seq", "I"))
    nla_map = ((0, "IFAL_ADDRESS_UNSPEC", "none"),
               (1, "IFAL_ADDRESS", "target"),
               (2, "IFAL_LABEL", "uint32"))


class prefixmsg(nlmsg):
    prefix = "PREFIX_"
    fields = (("family", "B"), ("__pad1", "B"), ("__pad2", "H"),
              ("ifindex", "i"), ("prefix_type", "B"), ("prefix_len", "B"),
              ("prefix_flags", "B"), ("__pad3", "B"))
    nla_map = ((0, "PREFIX_UNSPEC", "none"),
               (1, "PREFIX_ADDRESS", "ip6addr"),
               (2, "PREFIX_CACHEINFO", "cacheinfo"))

    class cacheinfo(pstruct):
        fields = (("preferred_time", "I"), ("valid_time", "I"))


class br_port_msg(nlmsg):
    prefix = "MDBA_"
    fields = (("family", "B"), ("__pad", "3x"), ("ifindex", "I"))
    nla_map = ((0, "MDBA_UNSPEC", "none"), (1, "MDBA_MDB", "hex"),
               (2, "MDBA_ROUTER", "hex"), (3, "MDBA_SET_ENTRY", "hex"),
               (4, "MDBA_SET_ENTRY_ATTRS", "hex"))


# -- extended ack ------------------------------------------------------------
class extack_msg(nlmsg):
    """The TLVs after an NLMSG_ERROR/NLMSG_DONE payload (NLM_F_ACK_TLVS).

    Decoded from a synthetic message: nlmsghdr + int error + the TLVs.
    """
    prefix = "NLMSGERR_ATTR_"
    fields = (("error", "i"),)
    nla_map = (
        (0, "NLMSGERR_ATTR_UNUSED", "none"),
        (1, "NLMSGERR_ATTR_MSG", "asciiz"),
        (2, "NLMSGERR_ATTR_OFFS", "uint32"),
        (3, "NLMSGERR_ATTR_COOKIE", "hex"),
        (4, "NLMSGERR_ATTR_POLICY", "policy"),
        (5, "NLMSGERR_ATTR_MISS_TYPE", "uint32"),
        (6, "NLMSGERR_ATTR_MISS_NEST", "uint32"),
    )
    policy = ctrlmsg.policy_nest.attribute_nest.nl_policy_type_attr


# -- sock_diag -----------------------------------------------------------------
class tcp_info_x(inet_diag_msg.tcp_info):
    """struct tcp_info with its bit fields right, any length."""

    def decode(self):
        hlen = struct.unpack_from("=H", self.data, self.offset)[0]
        self.length = hlen
        vals = partial_fields(type(self), self.data, self.offset + 4,
                              self.offset + max(hlen, 4))
        b6 = vals.get("tcpi_snd_wscale")
        if b6 is not None:  # __u8 tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4
            vals["tcpi_snd_wscale"] = b6 & 0xF
            vals["tcpi_rcv_wscale"] = b6 >> 4
        b7 = vals.get("tcpi_delivery_rate_app_limited")
        if b7 is not None:  # app_limited : 1, fastopen_client_fail : 2
            vals["tcpi_delivery_rate_app_limited"] = b7 & 1
            vals["tcpi_fastopen_client_fail"] = (b7 >> 1) & 3
        self.update(vals)
        self.decoded = True


inet_diag_msg_x = derive(inet_diag_msg, "inet_diag_msg_x", (
    (2, "INET_DIAG_INFO", "tcp_info_x"),
    (5, "INET_DIAG_TOS", "uint8"),
    (6, "INET_DIAG_TCLASS", "uint8"),
    (7, "INET_DIAG_SKMEMINFO", "skmeminfo"),
    (10, "INET_DIAG_PROTOCOL", "uint8"),
    (15, "INET_DIAG_MARK", "uint32"),
    (22, "INET_DIAG_SOCKOPT", "hex"),
), tcp_info_x=tcp_info_x, skmeminfo=skmeminfo)

inet_diag_req_x = derive(inet_diag_req, "inet_diag_req_x", (
    (0, "INET_DIAG_REQ_NONE", "none"),
    (1, "INET_DIAG_REQ_BYTECODE", "hex"),
    (2, "INET_DIAG_REQ_SK_BPF_STORAGES", "hex"),
    (3, "INET_DIAG_REQ_PROTOCOL", "uint32"),
))

unix_diag_msg_x = derive(unix_diag_msg, "unix_diag_msg_x", (
    (0, "UNIX_DIAG_NAME", "unix_name"),
    (3, "UNIX_DIAG_ICONS", "u32list"),
    (5, "UNIX_DIAG_MEMINFO", "skmeminfo"),
    (7, "UNIX_DIAG_UID", "uint32"),
), unix_name=unix_name, u32list=u32list, skmeminfo=skmeminfo)

unix_diag_req_x = unix_diag_req


class netlink_diag_req(nlmsg):
    fields = (("sdiag_family", "B"), ("sdiag_protocol", "B"),
              ("__pad", "H"), ("ndiag_ino", "I"), ("ndiag_show", "I"),
              ("ndiag_cookie", "2I"))


class netlink_diag_msg(nlmsg):
    fields = (("ndiag_family", "B"), ("ndiag_type", "B"),
              ("ndiag_protocol", "B"), ("ndiag_state", "B"),
              ("ndiag_portid", "I"), ("ndiag_dst_portid", "I"),
              ("ndiag_dst_group", "I"), ("ndiag_ino", "I"),
              ("ndiag_cookie", "2I"))
    nla_map = (
        (0, "NETLINK_DIAG_MEMINFO", "skmeminfo"),
        (1, "NETLINK_DIAG_GROUPS", "u32list"),
        (2, "NETLINK_DIAG_RX_RING", "hex"),
        (3, "NETLINK_DIAG_TX_RING", "hex"),
        (4, "NETLINK_DIAG_FLAGS", "uint32"),
    )
    skmeminfo = skmeminfo
    u32list = u32list


class packet_diag_req(nlmsg):
    fields = (("sdiag_family", "B"), ("sdiag_protocol", "B"),
              ("__pad", "H"), ("pdiag_ino", "I"), ("pdiag_show", "I"),
              ("pdiag_cookie", "2I"))


class packet_diag_msg(nlmsg):
    fields = (("pdiag_family", "B"), ("pdiag_type", "B"), ("pdiag_num", "H"),
              ("pdiag_ino", "I"), ("pdiag_cookie", "2I"))
    nla_map = (
        (0, "PACKET_DIAG_INFO", "info"),
        (1, "PACKET_DIAG_MCLIST", "hex"),
        (2, "PACKET_DIAG_RX_RING", "hex"),
        (3, "PACKET_DIAG_TX_RING", "hex"),
        (4, "PACKET_DIAG_FANOUT", "uint32"),
        (5, "PACKET_DIAG_UID", "uint32"),
        (6, "PACKET_DIAG_MEMINFO", "skmeminfo"),
        (7, "PACKET_DIAG_FILTER", "hex"),
    )
    skmeminfo = skmeminfo

    class info(pstruct):
        fields = (("pdi_index", "I"), ("pdi_version", "I"),
                  ("pdi_reserve", "I"), ("pdi_copy_thresh", "I"),
                  ("pdi_tstamp", "I"), ("pdi_flags", "I"))


class sock_diag_family_only(nlmsg):
    """Any other sock_diag family: just the leading family/protocol bytes."""
    fields = (("sdiag_family", "B"), ("sdiag_protocol", "B"))


class diag_msg_family_only(nlmsg):
    fields = (("family", "B"),)


# -- attributes whose pyroute2 class is wrong, fixed by name -------------------
_XDP_ATTACHED = {0: "XDP_ATTACHED_NONE", 1: "XDP_ATTACHED_DRV",
                 2: "XDP_ATTACHED_SKB", 3: "XDP_ATTACHED_HW",
                 4: "XDP_ATTACHED_MULTI"}


def _xdp_attached(raw):
    return _XDP_ATTACHED.get(raw[0], raw[0])


def _bridge_id(raw):
    """struct ifla_bridge_id {__u8 prio[2]; __u8 addr[6];} as ip prints it:
    "8000.d6:d5:eb:ff:a1:d6" (pyroute2 reads prio in host order)."""
    if len(raw) < 8:
        return raw.hex()
    return "%02x%02x.%s" % (raw[0], raw[1],
                            ":".join("%02x" % b for b in raw[2:8]))


def _be32_bits(table):
    def fix(raw):
        return bits(int.from_bytes(raw[:4], "big"), table)
    return fix


def _addr(raw):
    return addr_text(bytes(raw))


def _b64(raw):
    return base64.b64encode(bytes(raw)).decode("ascii")


ATTR_OVERRIDES.update({
    "WGDEVICE_A_PUBLIC_KEY": _b64,
    "WGPEER_A_PUBLIC_KEY": _b64,
    "WGALLOWEDIP_A_IPADDR": _addr,
    "IFLA_XDP_ATTACHED": _xdp_attached,
    "IFLA_BRPORT_ROOT_ID": _bridge_id,
    "IFLA_BRPORT_BRIDGE_ID": _bridge_id,
    "IFLA_BR_ROOT_ID": _bridge_id,
    "IFLA_BR_BRIDGE_ID": _bridge_id,
    # enum nft_chain_flags starts at NFT_CHAIN_BASE = 1 << 0
    "NFTA_CHAIN_FLAGS": _be32_bits(((1, "NFT_CHAIN_BASE"),
                                    (2, "NFT_CHAIN_HW_OFFLOAD"),
                                    (4, "NFT_CHAIN_BINDING"))),
    "NFTA_SET_ELEM_FLAGS": _be32_bits(((1, "NFT_SET_ELEM_INTERVAL_END"),
                                       (2, "NFT_SET_ELEM_CATCHALL"))),
})


def _u32(raw):
    return int.from_bytes(raw[:4], "little")


def _u32_bits(table):
    def fix(raw):
        return bits(_u32(raw), table) if len(raw) >= 4 else bytes(raw).hex()
    return fix


def _u8_enum(table):
    def fix(raw):
        return table.get(raw[0], raw[0]) if raw else ""
    return fix


# flags and enums pyroute2 leaves as numbers: named as iproute2 and the kernel's
# headers name them (include/uapi/linux/rtnetlink.h, if_link.h)
ATTR_OVERRIDES.update({
    "IFLA_EXT_MASK": _u32_bits(((1 << 0, "RTEXT_FILTER_VF"), (1 << 1, "RTEXT_FILTER_BRVLAN"),
                                (1 << 2, "RTEXT_FILTER_BRVLAN_COMPRESSED"),
                                (1 << 3, "RTEXT_FILTER_SKIP_STATS"), (1 << 4, "RTEXT_FILTER_MRP"),
                                (1 << 5, "RTEXT_FILTER_CFM_CONFIG"),
                                (1 << 6, "RTEXT_FILTER_CFM_STATUS"), (1 << 7, "RTEXT_FILTER_MST"))),
    "IFLA_INET6_FLAGS": _u32_bits(((0x10, "IF_RS_SENT"), (0x20, "IF_RA_RCVD"),
                                   (0x40, "IF_RA_MANAGED"), (0x80, "IF_RA_OTHERCONF"),
                                   (0x80000000, "IF_READY"))),
    "IFLA_LINKMODE": _u8_enum({0: "IF_LINK_MODE_DEFAULT", 1: "IF_LINK_MODE_DORMANT",
                               2: "IF_LINK_MODE_TESTING"}),
})


def _boolopt(raw):
    """struct br_boolopt_multi {__u32 optval; __u32 optmask;}"""
    return {"optval": _u32(raw[:4]), "optmask": _u32(raw[4:8])}


_bridge_data = ifinfmsg.ifinfo.data_map.get("bridge")
if _bridge_data is not None:
    EXTRA_NAMES[_bridge_data] = {
        46: "IFLA_BR_MULTI_BOOLOPT",
        47: "IFLA_BR_MCAST_QUERIER_STATE",
        48: "IFLA_BR_FDB_N_LEARNED",
        49: "IFLA_BR_FDB_MAX_LEARNED",
    }
    ATTR_OVERRIDES.update({
        "IFLA_BR_MULTI_BOOLOPT": _boolopt,
        "IFLA_BR_FDB_N_LEARNED": _u32,
        "IFLA_BR_FDB_MAX_LEARNED": _u32,
    })


# -- nftables objects and traces (pyroute2 has no class for them) -------------
from pyroute2.netlink.nfnetlink import nfgen_msg  # noqa: E402


class nft_obj_msg(nfgen_msg):
    prefix = "NFTA_OBJ_"
    nla_map = (
        (0, "NFTA_OBJ_UNSPEC", "none"),
        (1, "NFTA_OBJ_TABLE", "asciiz"),
        (2, "NFTA_OBJ_NAME", "asciiz"),
        (3, "NFTA_OBJ_TYPE", "be32"),
        (4, "NFTA_OBJ_DATA", "hex"),
        (5, "NFTA_OBJ_USE", "be32"),
        (6, "NFTA_OBJ_HANDLE", "be64"),
        (7, "NFTA_OBJ_PAD", "hex"),
        (8, "NFTA_OBJ_USERDATA", "hex"),
    )


class nft_trace_msg(nfgen_msg):
    prefix = "NFTA_TRACE_"
    nla_map = (
        (0, "NFTA_TRACE_UNSPEC", "none"),
        (1, "NFTA_TRACE_TABLE", "asciiz"),
        (2, "NFTA_TRACE_CHAIN", "asciiz"),
        (3, "NFTA_TRACE_RULE_HANDLE", "be64"),
        (4, "NFTA_TRACE_TYPE", "be32"),
        (5, "NFTA_TRACE_VERDICT", "hex"),
        (6, "NFTA_TRACE_ID", "be32"),
        (7, "NFTA_TRACE_LL_HEADER", "hex"),
        (8, "NFTA_TRACE_NETWORK_HEADER", "hex"),
        (9, "NFTA_TRACE_TRANSPORT_HEADER", "hex"),
        (10, "NFTA_TRACE_IIF", "be32"),
        (11, "NFTA_TRACE_IIFTYPE", "be16"),
        (12, "NFTA_TRACE_OIF", "be32"),
        (13, "NFTA_TRACE_OIFTYPE", "be16"),
        (14, "NFTA_TRACE_MARK", "be32"),
        (15, "NFTA_TRACE_NFPROTO", "be32"),
        (16, "NFTA_TRACE_POLICY", "be32"),
        (17, "NFTA_TRACE_PAD", "hex"),
    )


# -- xfrm (include/uapi/linux/xfrm.h); pyroute2 has none ----------------------
def _xaddr(raw, family):
    raw = bytes(raw)
    if family == 2:
        return _s.inet_ntop(_s.AF_INET, raw[:4])
    if family == 10:
        return _s.inet_ntop(_s.AF_INET6, raw[:16])
    return raw.hex()


_SEL = (("sel_daddr", "16s"), ("sel_saddr", "16s"), ("sel_dport", ">H"),
        ("sel_dport_mask", ">H"), ("sel_sport", ">H"),
        ("sel_sport_mask", ">H"), ("sel_family", "H"),
        ("sel_prefixlen_d", "B"), ("sel_prefixlen_s", "B"),
        ("sel_proto", "B"), ("__sel_pad", "3x"), ("sel_ifindex", "i"),
        ("sel_user", "I"))                                           # 56
_ID = (("id_daddr", "16s"), ("id_spi", ">I"), ("id_proto", "B"),
       ("__id_pad", "3x"))                                           # 24
_LFT = tuple(("lft_" + n, "Q") for n in (
    "soft_byte_limit", "hard_byte_limit", "soft_packet_limit",
    "hard_packet_limit", "soft_add_expires_seconds",
    "hard_add_expires_seconds", "soft_use_expires_seconds",
    "hard_use_expires_seconds"))                                     # 64
_CUR = tuple(("curlft_" + n, "Q") for n in (
    "bytes", "packets", "add_time", "use_time"))                     # 32
_SA_INFO = _SEL + _ID + (("saddr", "16s"),) + _LFT + _CUR + (
    ("stats_replay_window", "I"), ("stats_replay", "I"),
    ("stats_integrity_failed", "I"), ("seq", "I"), ("reqid", "I"),
    ("family", "H"), ("mode", "B"), ("replay_window", "B"), ("flags", "B"),
    ("__pad", "7x"))                                                 # 224
_POL_INFO = _SEL + _LFT + _CUR + (
    ("priority", "I"), ("index", "I"), ("dir", "B"), ("action", "B"),
    ("flags", "B"), ("share", "B"), ("__pad", "4x"))                 # 168
_SA_ID = (("daddr", "16s"), ("spi", ">I"), ("family", "H"), ("proto", "B"),
          ("__pad", "x"))                                            # 24


class _xfrm_algo(nla_string):
    """struct xfrm_algo*: the name and key length; the key is redacted."""
    extra = ()          # fields between alg_key_len and the key

    def decode(self):
        nla_string.decode(self)
        raw = bytes(self["value"])
        out = {"alg_name": raw[:64].split(b"\0", 1)[0].decode("ascii", "replace")}
        off = 64
        for name in ("alg_key_len",) + self.extra:
            if off + 4 <= len(raw):
                out[name] = struct.unpack_from("=I", raw, off)[0]
            off += 4
        out["alg_key"] = Secret(raw[off:])     # shown as --show-secrets says
        self.value = out


class _xfrm_algo_aead(_xfrm_algo):
    extra = ("alg_icv_len",)


class _xfrm_algo_auth(_xfrm_algo):
    extra = ("alg_trunc_len",)


_XFRM_MODE_NAMES = {0: "XFRM_MODE_TRANSPORT", 1: "XFRM_MODE_TUNNEL",
                    2: "XFRM_MODE_ROUTEOPTIMIZATION", 3: "XFRM_MODE_IN_TRIGGER",
                    4: "XFRM_MODE_BEET", 5: "XFRM_MODE_IPTFS"}


class _xfrm_tmpl(nla_string):
    """XFRMA_TMPL: an array of struct xfrm_user_tmpl (64 bytes each)."""

    def decode(self):
        nla_string.decode(self)
        raw = bytes(self["value"])
        out = []
        for i in range(len(raw) // 64):
            r = raw[i * 64:(i + 1) * 64]
            family = struct.unpack_from("=H", r, 24)[0]
            spi, proto = struct.unpack_from(">IB", r, 16)
            reqid, mode, share, optional = struct.unpack_from("=IBBB", r, 44)
            aalgos, ealgos, calgos = struct.unpack_from("=III", r, 52)
            out.append({"daddr": _xaddr(r[0:16], family), "spi": spi,
                        "proto": IPPROTO_NAMES.get(proto, proto),
                        "family": AF_NAMES.get(family, family),
                        "saddr": _xaddr(r[28:44], family), "reqid": reqid,
                        "mode": _XFRM_MODE_NAMES.get(mode, mode),
                        "share": share, "optional": optional,
                        "aalgos": aalgos, "ealgos": ealgos,
                        "calgos": calgos})
        self.value = out


class _xfrm_addr(nla_string):
    def decode(self):
        nla_string.decode(self)
        raw = bytes(self["value"])
        family = None
        try:
            family = self.parent.get("family") or self.parent.get("sel_family")
        except Exception:
            pass
        if family not in (2, 10):
            family = 2 if raw[4:16] == bytes(12) else 10
        self.value = _xaddr(raw, family)


class _xfrm_encap(pstruct):
    fields = (("encap_type", "H"), ("encap_sport", ">H"),
              ("encap_dport", ">H"), ("__pad", "2x"), ("encap_oa", "16s"))


class _xfrm_replay(pstruct):
    fields = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))


class _xfrm_mark(pstruct):
    fields = (("v", "I"), ("m", "I"))


class _xfrm_ptype(pstruct):
    fields = (("type", "B"),)


class _xfrm_lifetime_cur(pstruct):
    fields = tuple((n[len("curlft_"):], f) for n, f in _CUR)


class xfrm_msg(nlmsg):
    """Base of the xfrm messages: XFRMA_* attributes, addresses as text."""
    prefix = "XFRMA_"
    nla_map = (
        (0, "XFRMA_UNSPEC", "none"),
        (1, "XFRMA_ALG_AUTH", "algo"),
        (2, "XFRMA_ALG_CRYPT", "algo"),
        (3, "XFRMA_ALG_COMP", "algo"),
        (4, "XFRMA_ENCAP", "encap"),
        (5, "XFRMA_TMPL", "tmpl"),
        (6, "XFRMA_SA", "hex"),
        (7, "XFRMA_POLICY", "hex"),
        (8, "XFRMA_SEC_CTX", "hex"),
        (9, "XFRMA_LTIME_VAL", "lifetime_cur"),
        (10, "XFRMA_REPLAY_VAL", "replay"),
        (11, "XFRMA_REPLAY_THRESH", "uint32"),
        (12, "XFRMA_ETIMER_THRESH", "uint32"),
        (13, "XFRMA_SRCADDR", "xaddr"),
        (14, "XFRMA_COADDR", "xaddr"),
        (15, "XFRMA_LASTUSED", "uint64"),
        (16, "XFRMA_POLICY_TYPE", "ptype"),
        (17, "XFRMA_MIGRATE", "hex"),
        (18, "XFRMA_ALG_AEAD", "algo_aead"),
        (19, "XFRMA_KMADDRESS", "hex"),
        (20, "XFRMA_ALG_AUTH_TRUNC", "algo_auth"),
        (21, "XFRMA_MARK", "mark"),
        (22, "XFRMA_TFCPAD", "uint32"),
        (23, "XFRMA_REPLAY_ESN_VAL", "hex"),
        (24, "XFRMA_SA_EXTRA_FLAGS", "uint32"),
        (25, "XFRMA_PROTO", "uint8"),
        (26, "XFRMA_ADDRESS_FILTER", "hex"),
        (27, "XFRMA_PAD", "hex"),
        (28, "XFRMA_OFFLOAD_DEV", "hex"),
        (29, "XFRMA_SET_MARK", "uint32"),
        (30, "XFRMA_SET_MARK_MASK", "uint32"),
        (31, "XFRMA_IF_ID", "uint32"),
        (32, "XFRMA_MTIMER_THRESH", "uint32"),
        (33, "XFRMA_SA_DIR", "uint8"),
        (34, "XFRMA_NAT_KEEPALIVE_INTERVAL", "uint32"),
        (35, "XFRMA_SA_PCPU", "uint32"),
    )
    fields = ()
    algo = _xfrm_algo
    algo_aead = _xfrm_algo_aead
    algo_auth = _xfrm_algo_auth
    tmpl = _xfrm_tmpl
    xaddr = _xfrm_addr
    encap = _xfrm_encap
    replay = _xfrm_replay
    mark = _xfrm_mark
    ptype = _xfrm_ptype
    lifetime_cur = _xfrm_lifetime_cur
    # (address field, family field)
    addresses = ()

    def decode(self):
        try:
            nlmsg.decode(self)
        finally:
            # a message cut short still shows the addresses it has: as hex, not bytes
            for field, fam in self.addresses:
                if dict.__contains__(self, field) and isinstance(self[field], (bytes, bytearray)):
                    family = self.get(fam)
                    if family not in (2, 10):
                        # an SA's selector may leave its family to the SA's
                        family = self.get("family")
                    self[field] = _xaddr(self[field], family)


def _xfrm_class(name, fields, addresses):
    return type(name, (xfrm_msg,), own_nla_map({
        "fields": fields, "addresses": addresses, "__module__": __name__}))


_SEL_ADDRS = (("sel_daddr", "sel_family"), ("sel_saddr", "sel_family"))
xfrm_usersa_info = _xfrm_class("xfrm_usersa_info", _SA_INFO, _SEL_ADDRS + (
    ("id_daddr", "family"), ("saddr", "family")))
xfrm_usersa_id = _xfrm_class("xfrm_usersa_id", _SA_ID, (("daddr", "family"),))
xfrm_userpolicy_info = _xfrm_class("xfrm_userpolicy_info", _POL_INFO,
                                   _SEL_ADDRS)
xfrm_userpolicy_id = _xfrm_class("xfrm_userpolicy_id", _SEL + (
    ("index", "I"), ("dir", "B"), ("__pad", "3x")), _SEL_ADDRS)
xfrm_user_expire = _xfrm_class("xfrm_user_expire", _SA_INFO + (
    ("hard", "B"), ("__pad2", "7x")), _SEL_ADDRS + (
    ("id_daddr", "family"), ("saddr", "family")))
xfrm_user_polexpire = _xfrm_class("xfrm_user_polexpire", _POL_INFO + (
    ("hard", "B"), ("__pad2", "7x")), _SEL_ADDRS)
xfrm_userspi_info = _xfrm_class("xfrm_userspi_info", _SA_INFO + (
    ("min", "I"), ("max", "I")), _SEL_ADDRS + (
    ("id_daddr", "family"), ("saddr", "family")))
xfrm_usersa_flush = _xfrm_class("xfrm_usersa_flush", (("proto", "B"),), ())
xfrm_aevent_id = _xfrm_class("xfrm_aevent_id", _SA_ID + (
    ("saddr", "16s"), ("ae_flags", "I"), ("reqid", "I")),
    (("daddr", "family"), ("saddr", "family")))
xfrm_attrs_only = _xfrm_class("xfrm_attrs_only", (), ())
_POL_IN_ACQ = tuple(("__pol" + n if n.startswith("__") else "pol_" + n, f)
                    for n, f in _POL_INFO)
xfrm_user_acquire = _xfrm_class("xfrm_user_acquire", _ID + (
    ("saddr", "16s"),) + _SEL + _POL_IN_ACQ + (
    ("aalgos", "I"), ("ealgos", "I"), ("calgos", "I"), ("seq", "I")),
    _SEL_ADDRS + (("pol_sel_daddr", "pol_sel_family"),
                  ("pol_sel_saddr", "pol_sel_family")))


class xfrm_sadinfo(nlmsg):
    prefix = "XFRMA_SAD_"
    fields = (("flags", "I"),)
    nla_map = ((0, "XFRMA_SAD_UNSPEC", "none"), (1, "XFRMA_SAD_CNT", "uint32"),
               (2, "XFRMA_SAD_HINFO", "hinfo"))

    class hinfo(pstruct):
        fields = (("sadhcnt", "I"), ("sadhmcnt", "I"))


class xfrm_spdinfo(nlmsg):
    prefix = "XFRMA_SPD_"
    fields = (("flags", "I"),)
    nla_map = ((0, "XFRMA_SPD_UNSPEC", "none"), (1, "XFRMA_SPD_INFO", "info"),
               (2, "XFRMA_SPD_HINFO", "hinfo"),
               (3, "XFRMA_SPD_IPV4_HTHRESH", "hthresh"),
               (4, "XFRMA_SPD_IPV6_HTHRESH", "hthresh"))

    class info(pstruct):
        fields = tuple((n, "I") for n in (
            "incnt", "outcnt", "fwdcnt", "inscnt", "outscnt", "fwdscnt"))

    class hinfo(pstruct):
        fields = (("spdhcnt", "I"), ("spdhmcnt", "I"))

    class hthresh(pstruct):
        fields = (("lbits", "B"), ("rbits", "B"))

XFRM_CLASSES = {
    0x10: xfrm_usersa_info, 0x1a: xfrm_usersa_info,       # NEWSA, UPDSA
    0x11: xfrm_usersa_id, 0x12: xfrm_usersa_id,           # DELSA, GETSA
    0x13: xfrm_userpolicy_info, 0x19: xfrm_userpolicy_info,
    0x14: xfrm_userpolicy_id, 0x15: xfrm_userpolicy_id,
    0x16: xfrm_userspi_info, 0x17: xfrm_user_acquire,
    0x18: xfrm_user_expire, 0x1b: xfrm_user_polexpire,
    0x1c: xfrm_usersa_flush, 0x1d: xfrm_attrs_only,
    0x1e: xfrm_aevent_id, 0x1f: xfrm_aevent_id,
    0x22: xfrm_sadinfo, 0x23: xfrm_sadinfo,
    0x24: xfrm_spdinfo, 0x25: xfrm_spdinfo,
}


# key material (WireGuard, MACsec, nl80211): redacted decoders, the macsec family
from . import keys  # noqa: E402,F401
