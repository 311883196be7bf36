"""Netlink's own rules, each in one place: the header's constants and which reply
ends a request.

The constants are <linux/netlink.h>'s, with the values pyroute2.netlink exports
(tests/unit/test_netlink_rules.py holds them equal). They are written out here
instead of imported because importing pyroute2.netlink costs ~160 ms, and live
commands put off loading pyroute2 until the first message is decoded: the
Tracing line comes first. bpf/base.bpf.h has the ones the probes use.
"""

NLMSG_HDRLEN = 16

# message types below NLMSG_MIN_TYPE: netlink's own
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLMSG_MIN_TYPE = 0x10
NLMSG_NAMES = {NLMSG_NOOP: "NLMSG_NOOP", NLMSG_ERROR: "NLMSG_ERROR",
               NLMSG_DONE: "NLMSG_DONE", NLMSG_OVERRUN: "NLMSG_OVERRUN"}

# nlmsg_flags: the low bits mean the same in every message
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 0x1, 0x2, 0x4, 0x8
NLM_F_DUMP_INTR, NLM_F_DUMP_FILTERED = 0x10, 0x20
# ... the high bits by kind: a GET request's, a NEW request's, an ACK's
NLM_F_ROOT, NLM_F_MATCH, NLM_F_ATOMIC = 0x100, 0x200, 0x400
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200

NETLINK_ROUTE, NETLINK_XFRM, NETLINK_NETFILTER = 0, 6, 12
NETLINK_KOBJECT_UEVENT, NETLINK_GENERIC = 15, 16
# the protocols whose messages may carry key material (nlbpf/secrets.py)
SECRET_PROTOCOLS = (NETLINK_XFRM, NETLINK_GENERIC)


def headerless(protocol, data):
    """Is this a message without a netlink header? The kernel's uevents ("add@/devices/
    ...\0ACTION=add\0...") and udev's ("libudev\0...") on NETLINK_KOBJECT_UEVENT are
    not framed: their first bytes are no length, nor is a seq where a header's is. What
    is framed there (a process may send anything) is taken as netlink."""
    if protocol != NETLINK_KOBJECT_UEVENT or len(data) < NLMSG_HDRLEN:
        return protocol == NETLINK_KOBJECT_UEVENT
    length = int.from_bytes(data[:4], "little")
    return not (NLMSG_HDRLEN <= length <= len(data) + 65536 and b"@" not in data[:4]
                and not data.startswith(b"libudev"))


def is_final_reply(nl_type, nl_flags, request_flags):
    """Does this reply (from the kernel) end the request it answers?

    An NLMSG_ERROR (an error, or the ACK) and a dump's NLMSG_DONE always do. Any
    other reply does unless it is a dump part (NLM_F_MULTI) or the request asked
    for an ACK, which then still follows. The probes apply the same rule in the
    kernel (bpf/message.bpf.h, on_reply)."""
    return (nl_type in (NLMSG_ERROR, NLMSG_DONE)
            or (not nl_flags & NLM_F_MULTI and not request_flags & NLM_F_ACK))


def final_status(nl_type, data):
    """The positive errno an NLMSG_ERROR or NLMSG_DONE carries (0: success), or None
    (another type, or an NLMSG_ERROR cut before its error field)."""
    if nl_type in (NLMSG_ERROR, NLMSG_DONE) and len(data) >= 20:
        return -int.from_bytes(data[16:20], "little", signed=True)
    if nl_type == NLMSG_DONE:
        return 0
    return None


def is_change(protocol, nl_type):
    """Does a request of this type change a table a dump may be walking (so that the
    dump's next part is marked NLM_F_DUMP_INTR)? The rule is bpf/nlbpf.h's, which the
    probes apply too: rtnetlink's NEW, DEL and SET of every table, and nftables'
    messages but the GETs."""
    if nl_type is None:
        return False
    if protocol == NETLINK_ROUTE:
        return nl_type >= _CHANGE["RTM_BASE"] and nl_type & 3 != _CHANGE["RTM_GET_OFFSET"]
    if protocol == NETLINK_NETFILTER and nl_type >> 8 == _CHANGE["NFNL_SUBSYS_NFTABLES"]:
        sub = nl_type & 0xff
        return sub < 64 and not _CHANGE["NFT_NOT_CHANGES"] >> sub & 1
    return False


def rtm_table(nl_type):
    """rtnetlink's table of a message type, by the same rule (types from RTM_BASE come in
    fours): 0 links, 1 addresses, 2 routes, 3 neighbours..."""
    return (nl_type - _CHANGE["RTM_BASE"]) // 4


def _change_rule():
    from .capture.abi import DEFINES
    return {k: DEFINES[k] for k in ("RTM_BASE", "RTM_GET_OFFSET", "NFNL_SUBSYS_NFTABLES",
                                    "NFT_NOT_CHANGES")}


_CHANGE = _change_rule()
