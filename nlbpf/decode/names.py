"""Constant names: address families, route tables/protocols/scopes/types,
interface/address/neighbour flags, socket states...

Two spellings are in use on purpose, following the tools people read:

* values iproute2 prints as words (route table, protocol, scope, type) are
  given as those words: "main", "boot", "universe", "unicast";
* everything else uses the kernel constant name: AF_INET, ARPHRD_ETHER,
  IFF_UP, IFA_F_PERMANENT, NUD_REACHABLE, NTF_ROUTER, RTM_F_CLONED.

Unknown values stay integers, unknown flag bits are kept as hex text.
"""

AF_NAMES = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX",
    5: "AF_APPLETALK", 6: "AF_NETROM", 7: "AF_BRIDGE", 8: "AF_ATMPVC",
    9: "AF_X25", 10: "AF_INET6", 11: "AF_ROSE", 12: "AF_DECnet",
    13: "AF_NETBEUI", 14: "AF_SECURITY", 15: "AF_KEY", 16: "AF_NETLINK",
    17: "AF_PACKET", 18: "AF_ASH", 19: "AF_ECONET", 20: "AF_ATMSVC",
    21: "AF_RDS", 22: "AF_SNA", 23: "AF_IRDA", 24: "AF_PPPOX",
    25: "AF_WANPIPE", 26: "AF_LLC", 27: "AF_IB", 28: "AF_MPLS", 29: "AF_CAN",
    30: "AF_TIPC", 31: "AF_BLUETOOTH", 32: "AF_IUCV", 33: "AF_RXRPC",
    34: "AF_ISDN", 35: "AF_PHONET", 36: "AF_IEEE802154", 37: "AF_CAIF",
    38: "AF_ALG", 39: "AF_NFC", 40: "AF_VSOCK", 41: "AF_KCM", 42: "AF_QIPCRTR",
    43: "AF_SMC", 44: "AF_XDP", 45: "AF_MCTP",
}
# rtnetlink-only pseudo families (include/uapi/linux/rtnetlink.h)
RTNL_FAMILY_NAMES = dict(AF_NAMES)
RTNL_FAMILY_NAMES.update({128: "RTNL_FAMILY_IPMR", 129: "RTNL_FAMILY_IP6MR"})

AF_INET, AF_INET6, AF_BRIDGE, AF_MPLS = 2, 10, 7, 28

# netfilter families (include/uapi/linux/netfilter.h)
NFPROTO_NAMES = {
    0: "NFPROTO_UNSPEC", 1: "NFPROTO_INET", 2: "NFPROTO_IPV4",
    3: "NFPROTO_ARP", 5: "NFPROTO_NETDEV", 7: "NFPROTO_BRIDGE",
    10: "NFPROTO_IPV6",
}

# iproute2's /etc/iproute2 defaults (lib/rt_names.c)
RT_TABLE_NAMES = {0: "unspec", 252: "compat", 253: "default", 254: "main",
                  255: "local"}
RT_PROTO_NAMES = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static",
    8: "gated", 9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted",
    14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted", 18: "keepalived",
    42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
    189: "rip", 192: "eigrp",
}
# kernel names (RT_SCOPE_*), lower case; iproute2 prints 0 as "global"
RT_SCOPE_NAMES = {0: "universe", 200: "site", 253: "link", 254: "host",
                  255: "nowhere"}
RT_SCOPE_IP_NAMES = dict(RT_SCOPE_NAMES)
RT_SCOPE_IP_NAMES[0] = "global"
RTN_NAMES = {
    0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
    5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit",
    9: "throw", 10: "nat", 11: "xresolve",
}

RTM_F_FLAGS = (
    (0x1, "RTNH_F_DEAD"), (0x2, "RTNH_F_PERVASIVE"), (0x4, "RTNH_F_ONLINK"),
    (0x8, "RTNH_F_OFFLOAD"), (0x10, "RTNH_F_LINKDOWN"),
    (0x20, "RTNH_F_UNRESOLVED"), (0x40, "RTNH_F_TRAP"),
    (0x100, "RTM_F_NOTIFY"), (0x200, "RTM_F_CLONED"),
    (0x400, "RTM_F_EQUALIZE"), (0x800, "RTM_F_PREFIX"),
    (0x1000, "RTM_F_LOOKUP_TABLE"), (0x2000, "RTM_F_FIB_MATCH"),
    (0x4000, "RTM_F_OFFLOAD"), (0x8000, "RTM_F_TRAP"),
    (0x20000000, "RTM_F_OFFLOAD_FAILED"),
    # a cached route's flags, which `ip route get` replies carry in rtm_flags too
    # (include/uapi/linux/in_route.h; `cache <local>`)
    (0x10000000, "RTCF_BROADCAST"), (0x80000000, "RTCF_LOCAL"),
)

IFF_FLAGS = (
    (0x1, "IFF_UP"), (0x2, "IFF_BROADCAST"), (0x4, "IFF_DEBUG"),
    (0x8, "IFF_LOOPBACK"), (0x10, "IFF_POINTOPOINT"),
    (0x20, "IFF_NOTRAILERS"), (0x40, "IFF_RUNNING"), (0x80, "IFF_NOARP"),
    (0x100, "IFF_PROMISC"), (0x200, "IFF_ALLMULTI"), (0x400, "IFF_MASTER"),
    (0x800, "IFF_SLAVE"), (0x1000, "IFF_MULTICAST"), (0x2000, "IFF_PORTSEL"),
    (0x4000, "IFF_AUTOMEDIA"), (0x8000, "IFF_DYNAMIC"),
    (0x10000, "IFF_LOWER_UP"), (0x20000, "IFF_DORMANT"), (0x40000, "IFF_ECHO"),
)

IFA_F_FLAGS = (
    (0x1, "IFA_F_SECONDARY"), (0x2, "IFA_F_NODAD"), (0x4, "IFA_F_OPTIMISTIC"),
    (0x8, "IFA_F_DADFAILED"), (0x10, "IFA_F_HOMEADDRESS"),
    (0x20, "IFA_F_DEPRECATED"), (0x40, "IFA_F_TENTATIVE"),
    (0x80, "IFA_F_PERMANENT"), (0x100, "IFA_F_MANAGETEMPADDR"),
    (0x200, "IFA_F_NOPREFIXROUTE"), (0x400, "IFA_F_MCAUTOJOIN"),
    (0x800, "IFA_F_STABLE_PRIVACY"),
)

NUD_FLAGS = (
    (0x1, "NUD_INCOMPLETE"), (0x2, "NUD_REACHABLE"), (0x4, "NUD_STALE"),
    (0x8, "NUD_DELAY"), (0x10, "NUD_PROBE"), (0x20, "NUD_FAILED"),
    (0x40, "NUD_NOARP"), (0x80, "NUD_PERMANENT"),
)
NTF_FLAGS = (
    (0x1, "NTF_USE"), (0x2, "NTF_SELF"), (0x4, "NTF_MASTER"),
    (0x8, "NTF_PROXY"), (0x10, "NTF_EXT_LEARNED"), (0x20, "NTF_OFFLOADED"),
    (0x40, "NTF_STICKY"), (0x80, "NTF_ROUTER"),
)

FIB_RULE_FLAGS = (
    (0x1, "FIB_RULE_PERMANENT"), (0x2, "FIB_RULE_INVERT"),
    (0x4, "FIB_RULE_UNRESOLVED"), (0x8, "FIB_RULE_IIF_DETACHED"),
    (0x10, "FIB_RULE_OIF_DETACHED"), (0x10000, "FIB_RULE_FIND_SADDR"),
)
FR_ACT_NAMES = {
    0: "FR_ACT_UNSPEC", 1: "FR_ACT_TO_TBL", 2: "FR_ACT_GOTO",
    3: "FR_ACT_NOP", 4: "FR_ACT_RES3", 5: "FR_ACT_RES4",
    6: "FR_ACT_BLACKHOLE", 7: "FR_ACT_UNREACHABLE", 8: "FR_ACT_PROHIBIT",
}
# what `ip rule` prints for the non-table actions
FR_ACT_IP = {2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable",
             8: "prohibit"}

NH_F_FLAGS = RTM_F_FLAGS[:7]

ARPHRD_NAMES = {
    0: "ARPHRD_NETROM", 1: "ARPHRD_ETHER", 2: "ARPHRD_EETHER",
    3: "ARPHRD_AX25", 4: "ARPHRD_PRONET", 5: "ARPHRD_CHAOS",
    6: "ARPHRD_IEEE802", 7: "ARPHRD_ARCNET", 8: "ARPHRD_APPLETLK",
    15: "ARPHRD_DLCI", 19: "ARPHRD_ATM", 23: "ARPHRD_METRICOM",
    24: "ARPHRD_IEEE1394", 27: "ARPHRD_EUI64", 32: "ARPHRD_INFINIBAND",
    256: "ARPHRD_SLIP", 257: "ARPHRD_CSLIP", 258: "ARPHRD_SLIP6",
    259: "ARPHRD_CSLIP6", 260: "ARPHRD_RSRVD", 264: "ARPHRD_ADAPT",
    270: "ARPHRD_ROSE", 271: "ARPHRD_X25", 272: "ARPHRD_HWX25",
    280: "ARPHRD_CAN", 281: "ARPHRD_MCTP", 512: "ARPHRD_PPP",
    513: "ARPHRD_CISCO", 516: "ARPHRD_LAPB", 517: "ARPHRD_DDCMP",
    518: "ARPHRD_RAWHDLC", 519: "ARPHRD_RAWIP", 768: "ARPHRD_TUNNEL",
    769: "ARPHRD_TUNNEL6", 770: "ARPHRD_FRAD", 771: "ARPHRD_SKIP",
    772: "ARPHRD_LOOPBACK", 773: "ARPHRD_LOCALTLK", 774: "ARPHRD_FDDI",
    775: "ARPHRD_BIF", 776: "ARPHRD_SIT", 777: "ARPHRD_IPDDP",
    778: "ARPHRD_IPGRE", 779: "ARPHRD_PIMREG", 780: "ARPHRD_HIPPI",
    781: "ARPHRD_ASH", 782: "ARPHRD_ECONET", 783: "ARPHRD_IRDA",
    784: "ARPHRD_FCPP", 785: "ARPHRD_FCAL", 786: "ARPHRD_FCPL",
    787: "ARPHRD_FCFABRIC", 800: "ARPHRD_IEEE802_TR",
    801: "ARPHRD_IEEE80211", 802: "ARPHRD_IEEE80211_PRISM",
    803: "ARPHRD_IEEE80211_RADIOTAP", 804: "ARPHRD_IEEE802154",
    805: "ARPHRD_IEEE802154_MONITOR", 820: "ARPHRD_PHONET",
    821: "ARPHRD_PHONET_PIPE", 822: "ARPHRD_CAIF", 823: "ARPHRD_IP6GRE",
    824: "ARPHRD_NETLINK", 825: "ARPHRD_6LOWPAN", 826: "ARPHRD_VSOCKMON",
    0xfffe: "ARPHRD_NONE", 0xffff: "ARPHRD_VOID",
}

IPPROTO_NAMES = {
    0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 2: "IPPROTO_IGMP", 4: "IPPROTO_IPIP",
    6: "IPPROTO_TCP", 8: "IPPROTO_EGP", 12: "IPPROTO_PUP", 17: "IPPROTO_UDP",
    22: "IPPROTO_IDP", 29: "IPPROTO_TP", 33: "IPPROTO_DCCP",
    41: "IPPROTO_IPV6", 46: "IPPROTO_RSVP", 47: "IPPROTO_GRE",
    50: "IPPROTO_ESP", 51: "IPPROTO_AH", 58: "IPPROTO_ICMPV6",
    92: "IPPROTO_MTP", 94: "IPPROTO_BEETPH", 98: "IPPROTO_ENCAP",
    103: "IPPROTO_PIM", 108: "IPPROTO_COMP", 115: "IPPROTO_L2TP",
    132: "IPPROTO_SCTP", 136: "IPPROTO_UDPLITE", 137: "IPPROTO_MPLS",
    143: "IPPROTO_ETHERNET", 255: "IPPROTO_RAW", 262: "IPPROTO_MPTCP",
}

# include/net/tcp_states.h; the sock_diag "states" masks use bit (1 << n)
TCP_STATE_NAMES = {
    1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV",
    4: "TCP_FIN_WAIT1", 5: "TCP_FIN_WAIT2", 6: "TCP_TIME_WAIT",
    7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT", 9: "TCP_LAST_ACK",
    10: "TCP_LISTEN", 11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV",
    13: "TCP_BOUND_INACTIVE",
}
# ss(8) spellings
SS_STATE_NAMES = {
    1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1",
    5: "FIN-WAIT-2", 6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT",
    9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING", 12: "SYN-RECV",
}
SOCK_TYPE_NAMES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW",
                   4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
                   10: "SOCK_PACKET"}

INET_DIAG_EXT_FLAGS = tuple(
    (1 << (i - 1), n) for i, n in (
        (1, "INET_DIAG_MEMINFO"), (2, "INET_DIAG_INFO"),
        (3, "INET_DIAG_VEGASINFO"), (4, "INET_DIAG_CONG"),
        (5, "INET_DIAG_TOS"), (6, "INET_DIAG_TCLASS"),
        (7, "INET_DIAG_SKMEMINFO"), (8, "INET_DIAG_SHUTDOWN")))
UDIAG_SHOW_FLAGS = (
    (0x1, "UDIAG_SHOW_NAME"), (0x2, "UDIAG_SHOW_VFS"),
    (0x4, "UDIAG_SHOW_PEER"), (0x8, "UDIAG_SHOW_ICONS"),
    (0x10, "UDIAG_SHOW_RQLEN"), (0x20, "UDIAG_SHOW_MEMINFO"),
    (0x40, "UDIAG_SHOW_UID"),
)
NDIAG_SHOW_FLAGS = (
    (0x1, "NDIAG_SHOW_MEMINFO"), (0x2, "NDIAG_SHOW_GROUPS"),
    (0x4, "NDIAG_SHOW_RING_CFG"), (0x8, "NDIAG_SHOW_FLAGS"),
)
PACKET_SHOW_FLAGS = (
    (0x1, "PACKET_SHOW_INFO"), (0x2, "PACKET_SHOW_MCLIST"),
    (0x4, "PACKET_SHOW_RING_CFG"), (0x8, "PACKET_SHOW_FANOUT"),
    (0x10, "PACKET_SHOW_MEMINFO"), (0x20, "PACKET_SHOW_FILTER"),
)
NETLINK_PROTO_NAMES = {
    0: "NETLINK_ROUTE", 1: "NETLINK_UNUSED", 2: "NETLINK_USERSOCK",
    3: "NETLINK_FIREWALL", 4: "NETLINK_SOCK_DIAG", 5: "NETLINK_NFLOG",
    6: "NETLINK_XFRM", 7: "NETLINK_SELINUX", 8: "NETLINK_ISCSI",
    9: "NETLINK_AUDIT", 10: "NETLINK_FIB_LOOKUP", 11: "NETLINK_CONNECTOR",
    12: "NETLINK_NETFILTER", 13: "NETLINK_IP6_FW", 14: "NETLINK_DNRTMSG",
    15: "NETLINK_KOBJECT_UEVENT", 16: "NETLINK_GENERIC",
    18: "NETLINK_SCSITRANSPORT", 19: "NETLINK_ECRYPTFS", 20: "NETLINK_RDMA",
    21: "NETLINK_CRYPTO", 22: "NETLINK_SMC", 255: "NDIAG_PROTO_ALL",
}


def bits(value, table):
    """Names of the bits set in ``value``; leftover bits as one hex string."""
    if not isinstance(value, int):
        return value
    out = []
    rest = value
    for bit, name in table:
        if value & bit == bit and bit:
            out.append(name)
            rest &= ~bit
    if rest:
        out.append("0x%x" % rest)
    return out


def state_bits(mask, names=TCP_STATE_NAMES):
    """A sock_diag states mask (bit n = state n) as state names.

    Bit 0 (no state 0 exists) is ignored: ss sets it as part of SS_ALL.
    Every TCP state 1..11 set reads "all", as ss would say.
    """
    if not isinstance(mask, int):
        return mask
    if mask & 0xFFE == 0xFFE:
        return ["all"]
    out = []
    rest = mask & ~1
    for n, name in names.items():
        if mask & (1 << n):
            out.append(name)
            rest &= ~(1 << n)
    if rest:
        out.append("0x%x" % rest)
    return out


def name_of(table, value):
    """``table[value]`` if known, else the value unchanged."""
    try:
        return table.get(value, value)
    except TypeError:
        return value
