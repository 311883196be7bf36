"""Declarative tables: protocol -> message type -> (name, kind, class).

``kind`` is what the NLM_F_* high bits mean for that type, as strace and the
kernel read them: "get" (ROOT/MATCH/ATOMIC, DUMP), "new" (REPLACE/EXCL/
CREATE/APPEND), "del" (NONREC/BULK) or None (left as hex).

Classes are pyroute2's (or the fixes in classes.py); this module imports
pyroute2 and is loaded on first use by core.py.
"""
from pyroute2.netlink import genlmsg, rtnl
from pyroute2.netlink.nfnetlink import nfgen_msg
from pyroute2.netlink.nfnetlink import nftsocket
from pyroute2.netlink.nfnetlink.ipset import ipset_msg
from pyroute2.netlink.nfnetlink.nfctsocket import (nfct_msg, nfct_stats,
                                                   nfct_stats_cpu)
from pyroute2.netlink.rtnl.br_vlan import br_vlan_msg
from pyroute2.netlink.rtnl.ndtmsg import ndtmsg
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg
from pyroute2.netlink.rtnl.ifstatsmsg import ifstatsmsg
from pyroute2.netlink.connector import cn_msg
from pyroute2.netlink.connector import cn_proc

from . import classes as C
from . import names as N
from .engine import mute_pyroute2_logs

mute_pyroute2_logs()

# -- NETLINK_ROUTE (include/uapi/linux/rtnetlink.h) -------------------------
# pyroute2's names, below its own pseudo types (RTM_NEWNETNS and such, 500+)
RTM_NAMES = {value: name for value, name in rtnl.RTM_VALUES.items() if value < 500}
# ... and the ones pyroute2 lacks (include/uapi/linux/rtnetlink.h)
RTM_NAMES.update({
    56: "RTM_NEWMULTICAST", 57: "RTM_DELMULTICAST", 60: "RTM_NEWANYCAST",
    61: "RTM_DELANYCAST", 95: "RTM_SETSTATS", 100: "RTM_NEWCHAIN", 101: "RTM_DELCHAIN",
    102: "RTM_GETCHAIN", 104: "RTM_NEWNEXTHOP", 105: "RTM_DELNEXTHOP", 106: "RTM_GETNEXTHOP",
})


def _route_classes():
    table = {}

    def put(cls, *types):
        for t in types:
            table[t] = cls
    put(C.ifinfmsg_x, 16, 17, 18, 19, 108, 109, 110)
    put(C.ifaddrmsg_x, 20, 21, 22, 56, 57, 58, 60, 61, 62)
    put(C.rtmsg_x, 24, 25, 26)
    put(C.ndmsg_x, 28, 29, 30)
    put(C.fibmsg_x, 32, 33, 34)
    put(C.tcmsg_x, 36, 37, 38, 40, 41, 42, 44, 45, 46, 100, 101, 102)
    put(C.tcamsg, 48, 49, 50)
    put(C.prefixmsg, 52)
    put(ndtmsg, 64, 66, 67)
    put(C.ifaddrlblmsg, 72, 73, 74)
    put(C.netconfmsg, 80, 81, 82)
    put(C.br_port_msg, 84, 85, 86)
    put(nsidmsg, 88, 89, 90)
    put(ifstatsmsg, 92, 94, 95)
    put(C.nhmsg, 104, 105, 106, 116, 117, 118)
    put(br_vlan_msg, 112, 113, 114)
    return table


ROUTE_CLASSES = _route_classes()
# GET requests may carry only struct rtgenmsg (one family byte, padded)
ROUTE_GET_SHORT_OK = True


def route_kind(t):
    if t == 49:                 # RTM_DELACTION takes the GET modifiers
        return "get"
    return ("new", "del", "get", None)[t & 3]


# -- NETLINK_SOCK_DIAG -------------------------------------------------------
SOCK_DIAG_NAMES = {18: "TCPDIAG_GETSOCK", 19: "DCCPDIAG_GETSOCK",
                   20: "SOCK_DIAG_BY_FAMILY", 21: "SOCK_DESTROY"}
DIAG_REQ_CLASSES = {2: C.inet_diag_req_x, 10: C.inet_diag_req_x,
                    1: C.unix_diag_req_x, 16: C.netlink_diag_req,
                    17: C.packet_diag_req}
DIAG_MSG_CLASSES = {2: C.inet_diag_msg_x, 10: C.inet_diag_msg_x,
                    1: C.unix_diag_msg_x, 16: C.netlink_diag_msg,
                    17: C.packet_diag_msg}


def sock_diag_class(t, payload, flags):
    fam = payload[0] if payload else None
    if t in (18, 19):
        return C.inet_diag_msg_x if not flags & 1 else C.diag_msg_family_only
    if flags & 1:   # NLM_F_REQUEST
        return DIAG_REQ_CLASSES.get(fam, C.sock_diag_family_only)
    return DIAG_MSG_CLASSES.get(fam, C.diag_msg_family_only)


# -- NETLINK_NETFILTER ----------------------------------------------------------
NFNL_SUBSYS = {
    1: ("IPCTNL_MSG_CT_", ("NEW", "GET", "DELETE", "GET_CTRZERO",
                           "GET_STATS_CPU", "GET_STATS", "GET_DYING",
                           "GET_UNCONFIRMED")),
    2: ("IPCTNL_MSG_EXP_", ("NEW", "GET", "DELETE", "GET_STATS_CPU")),
    3: ("NFQNL_MSG_", ("PACKET", "VERDICT", "CONFIG", "VERDICT_BATCH")),
    4: ("NFULNL_MSG_", ("PACKET", "CONFIG")),
    5: ("OSF_MSG_", ("ADD", "REMOVE")),
    6: ("IPSET_CMD_", ("NONE", "PROTOCOL", "CREATE", "DESTROY", "FLUSH",
                       "RENAME", "SWAP", "LIST", "SAVE", "ADD", "DEL", "TEST",
                       "HEADER", "TYPE", "GET_BYNAME", "GET_BYINDEX")),
    7: ("NFNL_MSG_ACCT_", ("NEW", "GET", "GET_CTRZERO", "DEL", "OVERQUOTA")),
    8: ("IPCTNL_MSG_TIMEOUT_", ("NEW", "GET", "DELETE", "DEFAULT_SET",
                                "DEFAULT_GET")),
    9: ("NFNL_MSG_CTHELPER_", ("NEW", "GET", "DEL")),
    10: ("NFT_MSG_", (
        "NEWTABLE", "GETTABLE", "DELTABLE", "NEWCHAIN", "GETCHAIN",
        "DELCHAIN", "NEWRULE", "GETRULE", "DELRULE", "NEWSET", "GETSET",
        "DELSET", "NEWSETELEM", "GETSETELEM", "DELSETELEM", "NEWGEN",
        "GETGEN", "TRACE", "NEWOBJ", "GETOBJ", "DELOBJ", "GETOBJ_RESET",
        "NEWFLOWTABLE", "GETFLOWTABLE", "DELFLOWTABLE", "GETRULE_RESET",
        "DESTROYTABLE", "DESTROYCHAIN", "DESTROYRULE", "DESTROYSET",
        "DESTROYSETELEM", "DESTROYOBJ", "DESTROYFLOWTABLE",
        "GETSETELEM_RESET")),
    11: ("NFNL_MSG_COMPAT_", ("GET",)),
    12: ("NFNL_MSG_HOOK_", ("GET",)),
}
NFNL_SUBSYS_NAMES = {
    0: "NFNL_SUBSYS_NONE", 1: "NFNL_SUBSYS_CTNETLINK",
    2: "NFNL_SUBSYS_CTNETLINK_EXP", 3: "NFNL_SUBSYS_QUEUE",
    4: "NFNL_SUBSYS_ULOG", 5: "NFNL_SUBSYS_OSF", 6: "NFNL_SUBSYS_IPSET",
    7: "NFNL_SUBSYS_ACCT", 8: "NFNL_SUBSYS_CTNETLINK_TIMEOUT",
    9: "NFNL_SUBSYS_CTHELPER", 10: "NFNL_SUBSYS_NFTABLES",
    11: "NFNL_SUBSYS_NFT_COMPAT", 12: "NFNL_SUBSYS_HOOK",
}
NFT_CLASSES = dict(nftsocket.AsyncNFTSocket.policy)
NFT_CLASSES.update({17: C.nft_trace_msg, 18: C.nft_obj_msg, 19: C.nft_obj_msg,
                    20: C.nft_obj_msg, 21: C.nft_obj_msg, 31: C.nft_obj_msg})
# the DESTROY* variants carry what their DEL* counterparts do
for _new, _old in ((26, 2), (27, 5), (28, 8), (29, 11), (30, 14), (32, 24)):
    if _old in NFT_CLASSES:
        NFT_CLASSES[_new] = NFT_CLASSES[_old]
for _new, _old in ((25, 7), (33, 13)):     # GETRULE_RESET, GETSETELEM_RESET
    if _old in NFT_CLASSES:
        NFT_CLASSES[_new] = NFT_CLASSES[_old]
CT_CLASSES = {0: nfct_msg, 1: nfct_msg, 2: nfct_msg, 3: nfct_msg,
              4: nfct_stats_cpu, 5: nfct_stats, 6: nfct_msg, 7: nfct_msg}


def nf_type_name(t):
    if t == 0x10:
        return "NFNL_MSG_BATCH_BEGIN"
    if t == 0x11:
        return "NFNL_MSG_BATCH_END"
    sub, msg = t >> 8, t & 0xFF
    spec = NFNL_SUBSYS.get(sub)
    if spec and msg < len(spec[1]):
        return spec[0] + spec[1][msg]
    return None


def nf_class(t):
    sub, msg = t >> 8, t & 0xFF
    if sub == 10:
        return NFT_CLASSES.get(msg, nfgen_msg)
    if sub == 1:
        return CT_CLASSES.get(msg, nfgen_msg)
    if sub == 6:
        return ipset_msg
    return nfgen_msg


# -- NETLINK_XFRM (include/uapi/linux/xfrm.h) -----------------------------------
XFRM_NAMES = {
    0x10: "XFRM_MSG_NEWSA", 0x11: "XFRM_MSG_DELSA", 0x12: "XFRM_MSG_GETSA",
    0x13: "XFRM_MSG_NEWPOLICY", 0x14: "XFRM_MSG_DELPOLICY",
    0x15: "XFRM_MSG_GETPOLICY", 0x16: "XFRM_MSG_ALLOCSPI",
    0x17: "XFRM_MSG_ACQUIRE", 0x18: "XFRM_MSG_EXPIRE",
    0x19: "XFRM_MSG_UPDPOLICY", 0x1a: "XFRM_MSG_UPDSA",
    0x1b: "XFRM_MSG_POLEXPIRE", 0x1c: "XFRM_MSG_FLUSHSA",
    0x1d: "XFRM_MSG_FLUSHPOLICY", 0x1e: "XFRM_MSG_NEWAE",
    0x1f: "XFRM_MSG_GETAE", 0x20: "XFRM_MSG_REPORT",
    0x21: "XFRM_MSG_MIGRATE", 0x22: "XFRM_MSG_NEWSADINFO",
    0x23: "XFRM_MSG_GETSADINFO", 0x24: "XFRM_MSG_NEWSPDINFO",
    0x25: "XFRM_MSG_GETSPDINFO", 0x26: "XFRM_MSG_MAPPING",
    0x27: "XFRM_MSG_SETDEFAULT", 0x28: "XFRM_MSG_GETDEFAULT",
}
def xfrm_class(t, flags):
    if t in (0x12, 0x15) and flags & 0x301 == 0x301:
        return C.xfrm_attrs_only        # dumps send no header, maybe a filter
    return C.XFRM_CLASSES.get(t)


XFRM_MODES = C._XFRM_MODE_NAMES
XFRM_DIRS = {0: "XFRM_POLICY_IN", 1: "XFRM_POLICY_OUT", 2: "XFRM_POLICY_FWD"}
XFRM_ACTIONS = {0: "XFRM_POLICY_ALLOW", 1: "XFRM_POLICY_BLOCK"}
XFRM_STATE_FLAGS = ((1, "XFRM_STATE_NOECN"), (2, "XFRM_STATE_DECAP_DSCP"),
                    (4, "XFRM_STATE_NOPMTUDISC"), (8, "XFRM_STATE_WILDRECV"),
                    (16, "XFRM_STATE_ICMP"), (32, "XFRM_STATE_AF_UNSPEC"),
                    (64, "XFRM_STATE_ALIGN4"), (128, "XFRM_STATE_ESN"))
XFRM_POLICY_FLAGS = ((1, "XFRM_POLICY_LOCALOK"), (2, "XFRM_POLICY_ICMP"))

XFRM_KIND = {0x10: "new", 0x13: "new", 0x1e: "new", 0x22: "new",
             0x24: "new", 0x12: "get", 0x15: "get", 0x1f: "get",
             0x23: "get", 0x25: "get", 0x11: "del", 0x14: "del"}

# -- NETLINK_AUDIT (include/uapi/linux/audit.h), the common ones ---------------
AUDIT_NAMES = {
    1000: "AUDIT_GET", 1001: "AUDIT_SET", 1002: "AUDIT_LIST",
    1003: "AUDIT_ADD", 1004: "AUDIT_DEL", 1005: "AUDIT_USER",
    1006: "AUDIT_LOGIN", 1007: "AUDIT_WATCH_INS", 1008: "AUDIT_WATCH_REM",
    1009: "AUDIT_WATCH_LIST", 1010: "AUDIT_SIGNAL_INFO",
    1011: "AUDIT_ADD_RULE", 1012: "AUDIT_DEL_RULE", 1013: "AUDIT_LIST_RULES",
    1014: "AUDIT_TRIM", 1015: "AUDIT_MAKE_EQUIV", 1016: "AUDIT_TTY_GET",
    1017: "AUDIT_TTY_SET", 1018: "AUDIT_SET_FEATURE",
    1019: "AUDIT_GET_FEATURE", 1100: "AUDIT_USER_AUTH",
    1101: "AUDIT_USER_ACCT", 1102: "AUDIT_USER_MGMT",
    1103: "AUDIT_CRED_ACQ", 1104: "AUDIT_CRED_DISP",
    1105: "AUDIT_USER_START", 1106: "AUDIT_USER_END",
    1107: "AUDIT_USER_AVC", 1108: "AUDIT_USER_CHAUTHTOK",
    1109: "AUDIT_USER_ERR", 1110: "AUDIT_CRED_REFR",
    1111: "AUDIT_USYS_CONFIG", 1112: "AUDIT_USER_LOGIN",
    1113: "AUDIT_USER_LOGOUT", 1114: "AUDIT_ADD_USER",
    1115: "AUDIT_DEL_USER", 1116: "AUDIT_ADD_GROUP",
    1117: "AUDIT_DEL_GROUP", 1118: "AUDIT_DAC_CHECK",
    1119: "AUDIT_CHGRP_ID", 1120: "AUDIT_TEST", 1121: "AUDIT_TRUSTED_APP",
    1122: "AUDIT_USER_SELINUX_ERR", 1123: "AUDIT_USER_CMD",
    1124: "AUDIT_USER_TTY", 1125: "AUDIT_CHUSER_ID",
    1126: "AUDIT_GRP_AUTH", 1127: "AUDIT_SYSTEM_BOOT",
    1128: "AUDIT_SYSTEM_SHUTDOWN", 1129: "AUDIT_SYSTEM_RUNLEVEL",
    1130: "AUDIT_SERVICE_START", 1131: "AUDIT_SERVICE_STOP",
    1300: "AUDIT_SYSCALL", 1302: "AUDIT_PATH", 1303: "AUDIT_IPC",
    1304: "AUDIT_SOCKETCALL", 1305: "AUDIT_CONFIG_CHANGE",
    1306: "AUDIT_SOCKADDR", 1307: "AUDIT_CWD", 1309: "AUDIT_EXECVE",
    1311: "AUDIT_IPC_SET_PERM", 1312: "AUDIT_MQ_OPEN",
    1313: "AUDIT_MQ_SENDRECV", 1314: "AUDIT_MQ_NOTIFY",
    1315: "AUDIT_MQ_GETSETATTR", 1316: "AUDIT_KERNEL_OTHER",
    1317: "AUDIT_FD_PAIR", 1318: "AUDIT_OBJ_PID", 1319: "AUDIT_TTY",
    1320: "AUDIT_EOE", 1321: "AUDIT_BPRM_FCAPS", 1322: "AUDIT_CAPSET",
    1323: "AUDIT_MMAP", 1324: "AUDIT_NETFILTER_PKT",
    1325: "AUDIT_NETFILTER_CFG", 1326: "AUDIT_SECCOMP",
    1327: "AUDIT_PROCTITLE", 1328: "AUDIT_FEATURE_CHANGE",
    1329: "AUDIT_REPLACE", 1330: "AUDIT_KERN_MODULE",
    1331: "AUDIT_FANOTIFY", 1332: "AUDIT_TIME_INJOFFSET",
    1333: "AUDIT_TIME_ADJNTPVAL", 1334: "AUDIT_BPF",
    1335: "AUDIT_EVENT_LISTENER", 1336: "AUDIT_URINGOP",
    1337: "AUDIT_OPENAT2", 1338: "AUDIT_DM_CTRL", 1339: "AUDIT_DM_EVENT",
    1400: "AUDIT_AVC", 1401: "AUDIT_SELINUX_ERR", 1402: "AUDIT_AVC_PATH",
    1403: "AUDIT_MAC_POLICY_LOAD", 1404: "AUDIT_MAC_STATUS",
    1405: "AUDIT_MAC_CONFIG_CHANGE", 1700: "AUDIT_ANOM_PROMISCUOUS",
    1701: "AUDIT_ANOM_ABEND", 1702: "AUDIT_ANOM_LINK",
    1703: "AUDIT_ANOM_CREAT",
}

SELINUX_NAMES = {0x10: "SELNL_MSG_SETENFORCE", 0x11: "SELNL_MSG_POLICYLOAD"}

# -- NETLINK_CONNECTOR ------------------------------------------------------------
PROC_EVENT_CLASSES = dict(cn_proc.ProcEventMarshal.msg_map)
CN_MSG = cn_msg


# -- naming of fixed header fields ------------------------------------------------
def _rtmsg(f):
    _af(f, "family", N.RTNL_FAMILY_NAMES)
    _nm(f, "table", N.RT_TABLE_NAMES)
    _nm(f, "proto", N.RT_PROTO_NAMES)
    _nm(f, "scope", N.RT_SCOPE_NAMES)
    _nm(f, "type", N.RTN_NAMES)
    _bits(f, "flags", N.RTM_F_FLAGS)


def _ifinfmsg(f):
    _af(f, "family")
    if f.get("ifi_type"):       # 0 in a request: not given (ARPHRD_NETROM is 0 too)
        _nm(f, "ifi_type", N.ARPHRD_NAMES)
    _bits(f, "flags", N.IFF_FLAGS)
    f.pop("state", None)    # pyroute2's own up/down guess


def _ifaddrmsg(f):
    _af(f, "family")
    _bits(f, "flags", N.IFA_F_FLAGS)
    _nm(f, "scope", N.RT_SCOPE_NAMES)


def _ndmsg(f):
    _af(f, "family")
    _bits(f, "state", N.NUD_FLAGS)
    _bits(f, "flags", N.NTF_FLAGS)
    _nm(f, "ndm_type", N.RTN_NAMES)


def _fibmsg(f):
    _af(f, "family")
    _nm(f, "table", N.RT_TABLE_NAMES)
    _nm(f, "action", N.FR_ACT_NAMES)
    _bits(f, "flags", N.FIB_RULE_FLAGS)
    for pad in ("res1", "res2"):
        if f.get(pad) == 0:
            del f[pad]


def _family_only(f):
    _af(f, "family")
    _af(f, "rtgen_family")
    for pad in ("pad1", "pad2"):
        if f.get(pad) == 0:
            del f[pad]


def _nhmsg(f):
    _af(f, "family")
    _nm(f, "scope", N.RT_SCOPE_NAMES)
    _nm(f, "protocol", N.RT_PROTO_NAMES)
    _bits(f, "flags", N.NH_F_FLAGS)


def _nfgen(f):
    _nm(f, "nfgen_family", N.NFPROTO_NAMES)


def _diag_req(f):
    _af(f, "sdiag_family")
    fam = f.get("sdiag_family")
    if fam in ("AF_INET", "AF_INET6"):
        _nm(f, "sdiag_protocol", N.IPPROTO_NAMES)
        _bits(f, "idiag_ext", N.INET_DIAG_EXT_FLAGS)
        _states(f, "idiag_states")
    elif fam == "AF_UNIX":
        _states(f, "udiag_states")
        _bits(f, "udiag_show", N.UDIAG_SHOW_FLAGS)
    elif fam == "AF_NETLINK":
        _nm(f, "sdiag_protocol", N.NETLINK_PROTO_NAMES)
        _bits(f, "ndiag_show", N.NDIAG_SHOW_FLAGS)
    elif fam == "AF_PACKET":
        _bits(f, "pdiag_show", N.PACKET_SHOW_FLAGS)


def _diag_msg(f):
    for k in ("idiag_family", "udiag_family", "ndiag_family",
              "pdiag_family", "family"):
        _af(f, k)
    _nm(f, "idiag_state", N.TCP_STATE_NAMES)
    _nm(f, "udiag_state", N.TCP_STATE_NAMES)
    _nm(f, "udiag_type", N.SOCK_TYPE_NAMES)
    _nm(f, "ndiag_type", N.SOCK_TYPE_NAMES)
    _nm(f, "ndiag_protocol", N.NETLINK_PROTO_NAMES)
    # netlink sockets start in TCP_CLOSE (sock_init_data); connect() sets
    # NETLINK_CONNECTED
    _nm(f, "ndiag_state", {0: "NETLINK_UNCONNECTED", 1: "NETLINK_CONNECTED",
                           7: "TCP_CLOSE"})
    _nm(f, "pdiag_type", N.SOCK_TYPE_NAMES)


def _xfrm(f):
    """Name the constants, then fold sel_/id_/lft_/curlft_/stats_ into
    sub-dicts the way strace shows them (sel={...}, id={...})."""
    for key in ("family", "sel_family", "pol_sel_family"):
        _af(f, key)
    for key in ("sel_proto", "id_proto", "proto", "pol_sel_proto"):
        _nm(f, key, N.IPPROTO_NAMES)
    _nm(f, "mode", XFRM_MODES)
    for key in ("dir", "pol_dir"):
        _nm(f, key, XFRM_DIRS)
    for key in ("action", "pol_action"):
        _nm(f, key, XFRM_ACTIONS)
    if "priority" in f or "pol_priority" in f:
        _bits(f, "flags", XFRM_POLICY_FLAGS)
    elif "reqid" in f and "mode" in f:
        _bits(f, "flags", XFRM_STATE_FLAGS)
    for prefix in ("pol_sel_", "pol_lft_", "pol_curlft_", "sel_", "id_",
                   "lft_", "curlft_", "stats_", "pol_"):
        keys = [k for k in f if k.startswith(prefix)]
        if keys:
            sub = {k[len(prefix):]: f.pop(k) for k in keys}
            f[prefix[:-1]] = sub
    pol = f.get("pol")
    if isinstance(pol, dict):
        for k in ("pol_sel", "pol_lft", "pol_curlft"):
            if k in f:
                pol[k[4:]] = f.pop(k)


def _af(f, key, table=N.AF_NAMES):
    v = f.get(key)
    if isinstance(v, int):
        f[key] = table.get(v, v)


def _nm(f, key, table):
    v = f.get(key)
    if isinstance(v, int):
        f[key] = table.get(v, v)


def _bits(f, key, table):
    v = f.get(key)
    if isinstance(v, int):
        f[key] = N.bits(v, table)


def _states(f, key):
    v = f.get(key)
    if isinstance(v, int):
        f[key] = N.state_bits(v)


FIELD_NAMERS = {
    C.rtmsg_x: _rtmsg, C.ifinfmsg_x: _ifinfmsg, C.ifaddrmsg_x: _ifaddrmsg,
    C.ndmsg_x: _ndmsg, C.fibmsg_x: _fibmsg, C.tcmsg_x: _family_only,
    C.tcamsg: _family_only, C.prefixmsg: _family_only, ndtmsg: _family_only,
    C.ifaddrlblmsg: _family_only, C.netconfmsg: _family_only,
    C.br_port_msg: _family_only, nsidmsg: _family_only,
    ifstatsmsg: _family_only, C.nhmsg: _nhmsg, br_vlan_msg: _family_only,
    C.inet_diag_req_x: _diag_req, C.unix_diag_req_x: _diag_req,
    C.netlink_diag_req: _diag_req, C.packet_diag_req: _diag_req,
    C.sock_diag_family_only: _diag_req, C.inet_diag_msg_x: _diag_msg,
    C.unix_diag_msg_x: _diag_msg, C.netlink_diag_msg: _diag_msg,
    C.packet_diag_msg: _diag_msg, C.diag_msg_family_only: _diag_msg,
}
for _cls in set(NFT_CLASSES.values()) | set(CT_CLASSES.values()) | {
        ipset_msg, nfgen_msg}:
    FIELD_NAMERS[_cls] = _nfgen
for _cls in set(C.XFRM_CLASSES.values()) | {C.xfrm_attrs_only}:
    FIELD_NAMERS[_cls] = _xfrm
del _cls


_PROC_EVENTS = {0: "PROC_EVENT_NONE", 1: "PROC_EVENT_FORK",
                2: "PROC_EVENT_EXEC", 4: "PROC_EVENT_UID", 0x40: "PROC_EVENT_GID",
                0x80: "PROC_EVENT_SID", 0x100: "PROC_EVENT_PTRACE",
                0x200: "PROC_EVENT_COMM", 0x40000000: "PROC_EVENT_COREDUMP",
                0x80000000: "PROC_EVENT_EXIT"}


def _proc_event(f):
    _nm(f, "what", _PROC_EVENTS)


for _cls in set(PROC_EVENT_CLASSES.values()):
    FIELD_NAMERS[_cls] = _proc_event


def name_fields(cls, fields):
    namer = FIELD_NAMERS.get(cls)
    if namer is not None:
        try:
            namer(fields)
        except Exception:
            pass
    return fields


GENLMSG = genlmsg
# classes that are only a 4-byte header: what follows is a plain TLV chain
TLV_ONLY = frozenset((genlmsg, nfgen_msg))
