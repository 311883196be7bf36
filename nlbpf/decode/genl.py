"""Generic netlink: family ids -> names, command names, message classes.

Family ids are allocated at run time (only nlctrl is fixed, at 16), so a
decoder needs either the live kernel's table (``GenlFamilies.live()``) or to
learn it from the CTRL_CMD_GETFAMILY replies in the capture itself
(``feed()``).  Command names and payload classes come from pyroute2 where it
has the family.
"""
import enum
import importlib
import socket
import struct
import threading

GENL_ID_CTRL = 16

# family name -> (module, command-constant prefix, message class or
# {cmd: class} for requests, {cmd: class} for replies)
_SOURCES = {
    "nlctrl": ("pyroute2.netlink", "CTRL_CMD_", "ctrlmsg", None),
    "wireguard": ("pyroute2.netlink.generic.wireguard", "WG_CMD_", "wgmsg",
                  None),
    "macsec": ("nlbpf.decode.keys", "MACSEC_CMD_", "macsec_msg", None),
    "ovpn": ("nlbpf.decode.keys", "OVPN_CMD_", "ovpn_msg", None),
    "SMBD_GENL": ("nlbpf.decode.keys", "KSMBD_EVENT_", "smbd_msg", None),
    "nl80211": ("pyroute2.netlink.nl80211", "NL80211_CMD_", "nl80211cmd",
                None),
    "devlink": ("pyroute2.netlink.devlink", "DEVLINK_CMD_", "devlinkcmd",
                None),
    "TASKSTATS": ("pyroute2.netlink.taskstats", "TASKSTATS_CMD_", "tcmd",
                  "taskstatsmsg"),
    "IPVS": ("pyroute2.netlink.generic.ipvs", "IPVS_CMD_", "ipvsmsg", None),
    "l2tp": ("pyroute2.netlink.generic.l2tp", "L2TP_CMD_", "l2tpmsg", None),
    "mptcp_pm": ("pyroute2.netlink.generic.mptcp", "MPTCP_PM_CMD_",
                 "mptcp_msg", None),
    "acpi_event": ("pyroute2.netlink.event.acpi_event", "ACPI_GENL_CMD_",
                   "acpimsg", None),
    "VFS_DQUOT": ("pyroute2.netlink.event.dquot", "QUOTA_NL_C_", "dquotmsg",
                  None),
    "thermal": ("pyroute2.netlink.event.thermal", "THERMAL_GENL_CMD_",
                "thermal_msg", None),
    "ethtool": ("pyroute2.netlink.generic.ethtool", "ETHTOOL_MSG_", None,
                None),
}

# ethtool numbers requests and replies in two different enums
# (include/uapi/linux/ethtool_netlink_generated.h).  pyroute2 has the
# request names up to RINGS_SET and MODULE_EEPROM_GET; the rest of that
# run and the reply enum follow the kernel's order.
_ETHTOOL_REQUEST_EXTRA = {
    17: "ETHTOOL_MSG_CHANNELS_GET", 18: "ETHTOOL_MSG_CHANNELS_SET",
    19: "ETHTOOL_MSG_COALESCE_GET", 20: "ETHTOOL_MSG_COALESCE_SET",
    21: "ETHTOOL_MSG_PAUSE_GET", 22: "ETHTOOL_MSG_PAUSE_SET",
    23: "ETHTOOL_MSG_EEE_GET", 24: "ETHTOOL_MSG_EEE_SET",
    25: "ETHTOOL_MSG_TSINFO_GET", 26: "ETHTOOL_MSG_CABLE_TEST_ACT",
    27: "ETHTOOL_MSG_CABLE_TEST_TDR_ACT", 28: "ETHTOOL_MSG_TUNNEL_INFO_GET",
    29: "ETHTOOL_MSG_FEC_GET", 30: "ETHTOOL_MSG_FEC_SET",
}
_ETHTOOL_REPLY = {
    1: "STRSET_GET_REPLY", 2: "LINKINFO_GET_REPLY", 3: "LINKINFO_NTF",
    4: "LINKMODES_GET_REPLY", 5: "LINKMODES_NTF", 6: "LINKSTATE_GET_REPLY",
    7: "DEBUG_GET_REPLY", 8: "DEBUG_NTF", 9: "WOL_GET_REPLY", 10: "WOL_NTF",
    11: "FEATURES_GET_REPLY", 12: "FEATURES_SET_REPLY", 13: "FEATURES_NTF",
    14: "PRIVFLAGS_GET_REPLY", 15: "PRIVFLAGS_NTF", 16: "RINGS_GET_REPLY",
    17: "RINGS_NTF", 18: "CHANNELS_GET_REPLY", 19: "CHANNELS_NTF",
    20: "COALESCE_GET_REPLY", 21: "COALESCE_NTF", 22: "PAUSE_GET_REPLY",
    23: "PAUSE_NTF", 24: "EEE_GET_REPLY", 25: "EEE_NTF",
    26: "TSINFO_GET_REPLY", 27: "CABLE_TEST_NTF", 28: "CABLE_TEST_TDR_NTF",
    29: "TUNNEL_INFO_GET_REPLY", 30: "FEC_GET_REPLY", 31: "FEC_NTF",
    32: "MODULE_EEPROM_GET_REPLY",
}
_ETHTOOL_CLASSES_REQ = {1: "ethtool_strset_msg", 2: "ethtool_linkinfo_msg",
                        3: "ethtool_linkinfo_msg", 4: "ethtool_linkmode_msg",
                        5: "ethtool_linkmode_msg", 6: "ethtool_linkstate_msg",
                        9: "ethtool_wol_msg", 10: "ethtool_wol_msg",
                        15: "ethtool_rings_msg", 16: "ethtool_rings_msg",
                        31: "ethtool_module_eeprom_msg"}
_ETHTOOL_CLASSES_REP = {1: "ethtool_strset_msg", 2: "ethtool_linkinfo_msg",
                        3: "ethtool_linkinfo_msg", 4: "ethtool_linkmode_msg",
                        5: "ethtool_linkmode_msg", 6: "ethtool_linkstate_msg",
                        9: "ethtool_wol_msg", 10: "ethtool_wol_msg",
                        16: "ethtool_rings_msg", 17: "ethtool_rings_msg",
                        32: "ethtool_module_eeprom_msg"}

_lock = threading.Lock()
_cmd_cache = {}     # family -> {cmd: name}
_mod_cache = {}


def _module(path):
    mod = _mod_cache.get(path)
    if mod is None:
        try:
            mod = importlib.import_module(path)
        except Exception:
            mod = False
        _mod_cache[path] = mod
    return mod or None


def _commands(family):
    """{cmd: NAME} for a family pyroute2 knows (first name wins on alias)."""
    table = _cmd_cache.get(family)
    if table is not None:
        return table
    table = {}
    src = _SOURCES.get(family)
    if src is not None:
        mod = _module(src[0])
        if mod is not None:
            prefix = src[1]
            items = list(vars(mod).items())
            for obj in list(vars(mod).values()):
                # thermal keeps its commands in an Enum
                if isinstance(obj, enum.EnumMeta):
                    items.extend((k, v.value)
                                 for k, v in obj.__members__.items())
            for name, value in items:
                if name.startswith(prefix) and isinstance(value, int) \
                        and not isinstance(value, bool) \
                        and not name.endswith(("_MAX", "_CNT")):
                    table.setdefault(value, name)
    if family == "ethtool":
        for k, v in _ETHTOOL_REQUEST_EXTRA.items():
            table.setdefault(k, v)
    with _lock:
        _cmd_cache[family] = table
    return table


def command_name(family, cmd, request=True):
    """CTRL_CMD_GETFAMILY, WG_CMD_GET_DEVICE... or "cmd N"."""
    if family == "ethtool" and not request:
        name = _ETHTOOL_REPLY.get(cmd)
        return "ETHTOOL_MSG_" + name if name else "cmd %d" % cmd
    name = _commands(family).get(cmd) if family else None
    return name or "cmd %d" % cmd


def message_class(family, cmd, request=True):
    """The pyroute2 class for a family's payload (genlmsg if unknown)."""
    from pyroute2.netlink import genlmsg
    src = _SOURCES.get(family)
    if src is None:
        return genlmsg
    mod = _module(src[0])
    if mod is None:
        return genlmsg
    if family == "ethtool":
        names = _ETHTOOL_CLASSES_REQ if request else _ETHTOOL_CLASSES_REP
        cname = names.get(cmd)
    elif src[3] is not None and not request:
        cname = src[3]
    else:
        cname = src[2]
    cls = getattr(mod, cname, None) if cname else None
    return cls or genlmsg


class GenlFamilies:
    """Generic netlink family ids <-> names, with command names.

    ``GenlFamilies()`` knows nlctrl only; ``GenlFamilies.live()`` asks the
    running kernel once; ``feed()`` learns from nlctrl messages seen in a
    capture (CTRL_CMD_NEWFAMILY replies/notifications add, DELFAMILY
    removes).  ``decode()`` feeds the instance it is given by itself.
    """

    def __init__(self, families=None):
        self._names = {GENL_ID_CTRL: "nlctrl"}
        self._ids = {"nlctrl": GENL_ID_CTRL}
        self._versions = {}
        self._groups = {}       # multicast group id -> (family, group name)
        self._lock = threading.Lock()
        for fid, name in (families or {}).items():
            self.add(fid, name)

    # -- lookups -------------------------------------------------------
    def name(self, family_id):
        return self._names.get(family_id)

    def id(self, name):
        return self._ids.get(name)

    def version(self, family):
        if isinstance(family, int):
            family = self._names.get(family)
        return self._versions.get(family)

    def group(self, group_id):
        """(family, group name) of a generic netlink multicast group id."""
        return self._groups.get(group_id)

    def command_name(self, family, cmd, request=True):
        if isinstance(family, int):
            family = self._names.get(family)
        return command_name(family, cmd, request)

    def message_class(self, family, cmd, request=True):
        if isinstance(family, int):
            family = self._names.get(family)
        return message_class(family, cmd, request)

    def items(self):
        return sorted(self._names.items())

    def __contains__(self, key):
        return key in self._names or key in self._ids

    def __len__(self):
        return len(self._names)

    def __repr__(self):
        return "GenlFamilies(%r)" % dict(self.items())

    # -- learning --------------------------------------------------------
    def add(self, family_id, name, version=None, groups=None):
        try:
            family_id = int(family_id)
        except (TypeError, ValueError):
            return
        if not isinstance(name, str) or not name or not 0 < family_id < 0x10000:
            return
        with self._lock:
            old = self._names.get(family_id)
            if old and old != name:
                self._ids.pop(old, None)
            self._names[family_id] = name
            self._ids[name] = family_id
            if version is not None:
                self._versions[name] = version
            for gid, gname in (groups or ()):
                if isinstance(gid, int):
                    self._groups[gid] = (name, gname)

    def remove(self, family_id):
        if family_id == GENL_ID_CTRL:
            return
        with self._lock:
            name = self._names.pop(family_id, None)
            if name:
                self._ids.pop(name, None)

    def feed(self, decoded):
        """Learn from one decoded nlctrl message (decode() given these families does
        it as it decodes). Returns True when it taught something. Never raises."""
        try:
            return self._learn(decoded)
        except Exception:
            return False

    def _learn(self, d):
        if d is None or getattr(d, "protocol", None) != 16 or d.type != GENL_ID_CTRL:
            return False
        cmd = d.fields.get("cmd")
        attrs = d.attrs
        fid = attrs.get("CTRL_ATTR_FAMILY_ID")
        name = attrs.get("CTRL_ATTR_FAMILY_NAME")
        if isinstance(fid, list) or isinstance(name, list):
            return False
        if cmd == 2:            # CTRL_CMD_DELFAMILY
            if isinstance(fid, int):
                self.remove(fid)
                return True
            return False
        if cmd not in (1, 3):   # NEWFAMILY (replies carry it), GETFAMILY
            return False
        if not isinstance(fid, int) or not isinstance(name, str):
            return False
        groups = []
        for g in attrs.get("CTRL_ATTR_MCAST_GROUPS") or ():
            if isinstance(g, dict):
                groups.append((g.get("CTRL_ATTR_MCAST_GRP_ID"),
                               g.get("CTRL_ATTR_MCAST_GRP_NAME")))
        version = attrs.get("CTRL_ATTR_VERSION")
        self.add(fid, name, version if isinstance(version, int) else None,
                 groups)
        return True

    @classmethod
    def live(cls, timeout=2.0):
        """The running kernel's families (CTRL_CMD_GETFAMILY dump).

        Never raises: without permission, netlink or Linux it returns what
        it knows statically (nlctrl).
        """
        fams = cls()
        try:
            fams._query_pyroute2()
        except Exception:
            try:
                fams._query_raw(timeout)
            except Exception:
                pass
        return fams

    def _query_pyroute2(self):
        from pyroute2.netlink import (CTRL_CMD_GETFAMILY, GENL_ID_CTRL as CTRL,
                                      NETLINK_GENERIC, NLM_F_DUMP,
                                      NLM_F_REQUEST, ctrlmsg)
        from pyroute2.netlink.nlsocket import NetlinkSocket
        sock = NetlinkSocket(NETLINK_GENERIC)
        try:
            sock.bind()
            sock.register_policy({CTRL: ctrlmsg})
            req = ctrlmsg()
            req["cmd"] = CTRL_CMD_GETFAMILY
            req["version"] = 1
            for msg in sock.nlm_request(req, CTRL, NLM_F_REQUEST | NLM_F_DUMP):
                fid = msg.get_attr("CTRL_ATTR_FAMILY_ID")
                name = msg.get_attr("CTRL_ATTR_FAMILY_NAME")
                groups = [(g.get_attr("CTRL_ATTR_MCAST_GRP_ID"),
                           g.get_attr("CTRL_ATTR_MCAST_GRP_NAME"))
                          for g in (msg.get_attr("CTRL_ATTR_MCAST_GROUPS") or ())
                          if hasattr(g, "get_attr")]
                self.add(fid, name, msg.get_attr("CTRL_ATTR_VERSION"), groups)
        finally:
            sock.close()

    def _query_raw(self, timeout):
        """The dump without pyroute2: each reply's family id, name and version (its
        groups are left out: nothing here needs them without pyroute2)."""
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
        try:
            s.settimeout(timeout)
            s.bind((0, 0))
            req = struct.pack("=IHHII", 20, GENL_ID_CTRL, 0x301, 1, 0) + \
                bytes((3, 1, 0, 0))
            s.send(req)
            while True:
                data = s.recv(65536)
                off = 0
                while off + 16 <= len(data):
                    ln = struct.unpack_from("=I", data, off)[0]
                    if ln < 16:
                        return
                    mtype = struct.unpack_from("=H", data, off + 4)[0]
                    if mtype in (2, 3):
                        return
                    attrs = _ctrl_attrs(data[off + 20:off + ln])
                    fid, name = attrs.get(1), attrs.get(2)      # CTRL_ATTR_FAMILY_ID, _NAME
                    if fid is not None and len(fid) >= 2 and name:
                        version = attrs.get(3)                  # CTRL_ATTR_VERSION
                        self.add(struct.unpack_from("=H", fid)[0],
                                 name.split(b"\0", 1)[0].decode("ascii", "replace"),
                                 struct.unpack_from("=I", version)[0]
                                 if version and len(version) >= 4 else None, [])
                    off += (ln + 3) & ~3
        finally:
            s.close()


def _ctrl_attrs(raw):
    """{type: payload} of a flat attribute list (an nlctrl reply's, after its genl header)."""
    out = {}
    off = 0
    while off + 4 <= len(raw):
        ln, typ = struct.unpack_from("=HH", raw, off)
        if ln < 4:
            break
        out[typ & 0x3FFF] = raw[off + 4:off + ln]
        off += (ln + 3) & ~3
    return out
