"""One-line summaries of Decoded messages, worded like iproute2/ss/nft.

Routes, links, addresses and neighbours get ip(8)-like lines; the rest is
derived from the attributes generically (name-based picks), so a new message
type still gets something readable.  Interface indexes stay numbers: the
decoder has no view of the observed namespace's interface names.
"""
from .names import (AF_INET, AF_INET6, FR_ACT_IP, RT_PROTO_NAMES, RT_SCOPE_IP_NAMES,
                     RT_SCOPE_NAMES, RT_TABLE_NAMES, SS_STATE_NAMES, TCP_STATE_NAMES)

NFPROTO_NFT = {"NFPROTO_INET": "inet", "NFPROTO_IPV4": "ip",
               "NFPROTO_IPV6": "ip6", "NFPROTO_ARP": "arp",
               "NFPROTO_BRIDGE": "bridge", "NFPROTO_NETDEV": "netdev",
               "NFPROTO_UNSPEC": "unspec"}
_MAX_GENERIC = 6


def summarize(d):
    """What follows the type on a message's line (the line says the type first)."""
    if d.type_name == "NLMSG_ERROR":
        return _error(d)
    if d.type_name == "NLMSG_DONE" and d.protocol != 11:
        line = "done" if not d.errno else "done %s" % d.error
        if d.extack:
            line += ' "%s"' % d.extack
        return _tail(d, line)
    if d.length is None or (d.length < 16 and d.malformed):
        return _tail(d, "")
    fn = None
    if d.protocol == 0 and d.flags & 0x300 == 0x300 and d.flags & 1 \
            and d.kind == "get":
        # a plain dump request: only the family filter matters
        fam = d.fields.get("family", d.fields.get("rtgen_family"))
        line = "family %s" % fam if fam else ""      # the line says the type and "dump" before it
        for k, v in list(d.attrs.items())[:_MAX_GENERIC]:
            if _scalar(v):
                line += " %s=%s" % (k, v)
        return _tail(d, line)
    if d.protocol == 0:
        fn = _ROUTE.get(d.type)
    elif d.protocol == 16:
        fn = _genl
    elif d.protocol == 12:
        fn = _nft if d.type is not None and d.type >> 8 == 10 else None
    elif d.protocol == 4:
        fn = _sock_diag
    elif d.protocol == 6:
        fn = _xfrm
    elif d.protocol == 11:
        fn = _connector
    elif d.protocol == 15:
        fn = _uevent
    elif d.protocol == 9:
        fn = _audit
    line = None
    if fn is not None:
        try:
            line = fn(d)
        except Exception:
            line = None
    if not line:
        line = _generic(d)
    return _tail(d, line)


def _tail(d, line):
    if d.truncated:
        line += " [truncated]"
    if d.malformed:
        line += " [malformed: %s]" % d.malformed
    return line.strip()


def _error(d):
    if d.errno is None:
        line = "error ?"
    elif d.errno == 0:
        line = "ack"
    else:
        line = "%s (%s)" % (d.error, d.strerror)
    if d.extack:
        line += ' "%s"' % d.extack
    return _tail(d, line)


def _hexhead(b, n=32):
    if not b:
        return ""
    b = bytes(b)
    return b[:n].hex() + ("..." if len(b) > n else "")


def _scalar(v):
    return isinstance(v, (int, str, float)) and not isinstance(v, bool)


def _generic(d):
    # the line says the type before the summary: what follows is the attributes
    parts = []
    items = []
    for k, v in (d.attrs or {}).items():
        if _scalar(v) and not (isinstance(v, str) and len(v) > 64):
            items.append("%s=%s" % (k, v))
        if len(items) >= _MAX_GENERIC:
            break
    if items:
        parts.extend(items)
    elif d.payload:
        parts.append(_hexhead(d.payload))
    elif d.fields and not d.attrs:
        for k, v in list(d.fields.items())[:_MAX_GENERIC]:
            if _scalar(v):
                parts.append("%s=%s" % (k, v))
    return " ".join(str(p) for p in parts)


def _first(v):
    return v[0] if isinstance(v, list) and v else v


# -- rtnetlink ---------------------------------------------------------------
def _host_bits(family):
    return {"AF_INET": 32, "AF_INET6": 128, AF_INET: 32, AF_INET6: 128}.get(
        family)


def _prefix(addr, plen, family):
    if addr is None:
        return None
    if isinstance(addr, list):     # MPLS label stack
        return "/".join(str(x.get("label", x)) if isinstance(x, dict) else
                        str(x) for x in addr)
    if plen is None or plen == _host_bits(family):
        return str(addr)
    return "%s/%s" % (addr, plen)


def _route(d):
    f, a = d.fields, d.attrs
    fam = f.get("family")
    parts = []
    rtype = f.get("type")
    if rtype not in (None, "unicast", "unspec"):
        parts.append(str(rtype))
    dst = _first(a.get("RTA_DST"))
    if dst is not None:
        parts.append("dst " + _prefix(dst, f.get("dst_len"), fam))
    elif f.get("dst_len", 0) == 0 and "dst_len" in f:
        parts.append("dst default")
    src = _first(a.get("RTA_SRC"))
    if src is not None:
        parts.append("from " + _prefix(src, f.get("src_len"), fam))
    gw = _first(a.get("RTA_GATEWAY"))
    if gw is not None:
        parts.append("gw %s" % gw)
    via = _first(a.get("RTA_VIA"))
    if isinstance(via, dict) and via.get("addr"):
        parts.append("via %s" % via["addr"])
    if "RTA_OIF" in a:   # shown even when 0: an oif of 0 is a real bug
        parts.append("oif %s" % _first(a["RTA_OIF"]))
    if "RTA_IIF" in a:
        parts.append("iif %s" % _first(a["RTA_IIF"]))
    for hop in a.get("RTA_MULTIPATH") or ():
        if isinstance(hop, dict):
            h = "nexthop"
            if hop.get("RTA_GATEWAY") is not None:
                h += " gw %s" % hop["RTA_GATEWAY"]
            h += " oif %s" % hop.get("oif", "?")
            if hop.get("hops"):
                h += " weight %s" % (hop["hops"] + 1)
            parts.append(h)
    if "RTA_NH_ID" in a:
        parts.append("nhid %s" % a["RTA_NH_ID"])
    table = _first(a.get("RTA_TABLE"))
    table = RT_TABLE_NAMES.get(table, table) if table is not None \
        else f.get("table")
    if table is not None:
        parts.append("table %s" % table)
    proto = f.get("proto")
    if proto not in (None, "boot", "unspec"):
        parts.append("proto %s" % proto)
    scope = f.get("scope")
    if scope not in (None, "universe"):
        parts.append("scope %s" % scope)
    if a.get("RTA_PREFSRC") is not None:
        parts.append("src %s" % _first(a["RTA_PREFSRC"]))
    if a.get("RTA_PRIORITY") is not None:
        parts.append("metric %s" % _first(a["RTA_PRIORITY"]))
    if a.get("RTA_MARK") is not None:
        parts.append("mark 0x%x" % _first(a["RTA_MARK"]))
    if not parts:
        return None
    return " ".join(parts)


def _link(d):
    f, a = d.fields, d.attrs
    parts = []
    name = _first(a.get("IFLA_IFNAME"))
    if name is not None:
        parts.append("dev %s" % name)
    if f.get("index"):
        parts.append("index %s" % f["index"])
    flags = f.get("flags")
    if isinstance(flags, list) and flags:
        parts.append("<%s>" % ",".join(x[4:] if x.startswith("IFF_") else x
                                         for x in flags))
    if "IFLA_MTU" in a:
        parts.append("mtu %s" % _first(a["IFLA_MTU"]))
    if "IFLA_OPERSTATE" in a:
        parts.append("state %s" % _first(a["IFLA_OPERSTATE"]))
    if "IFLA_MASTER" in a:
        parts.append("master %s" % _first(a["IFLA_MASTER"]))
    info = a.get("IFLA_LINKINFO")
    if isinstance(info, dict) and info.get("IFLA_INFO_KIND"):
        parts.append("kind %s" % info["IFLA_INFO_KIND"])
    if a.get("IFLA_ADDRESS"):
        parts.append("link %s" % _first(a["IFLA_ADDRESS"]))
    if a.get("IFLA_GROUP"):
        parts.append("group %s" % _first(a["IFLA_GROUP"]))
    if not parts:
        # the type name is already on the line: say what little there is
        fam = f.get("family")
        return "family %s" % fam if fam else None
    return " ".join(parts)


def _addr(d):
    f, a = d.fields, d.attrs
    fam = f.get("family")
    local = _first(a.get("IFA_LOCAL"))
    address = _first(a.get("IFA_ADDRESS"))
    main = local if local is not None else address
    parts = []
    if main is not None:
        plen = f.get("prefixlen")
        parts.append("%s/%s" % (main, plen) if plen is not None else str(main))
        if local is not None and address is not None and address != local:
            parts.append("peer %s" % address)
    if a.get("IFA_BROADCAST"):
        parts.append("brd %s" % _first(a["IFA_BROADCAST"]))
    if f.get("index") is not None and (main is not None or f.get("index")):
        parts.append("dev %s" % f["index"])
    scope = f.get("scope")
    if scope is not None and main is not None:
        inv = {v: k for k, v in RT_SCOPE_NAMES.items()}
        parts.append("scope %s" % RT_SCOPE_IP_NAMES.get(inv.get(scope, scope),
                                                         scope))
    if a.get("IFA_LABEL"):
        parts.append("label %s" % _first(a["IFA_LABEL"]))
    if not parts:
        return "family %s" % fam if fam else ""
    return " ".join(parts)


def _neigh(d):
    f, a = d.fields, d.attrs
    parts = []
    dst = _first(a.get("NDA_DST"))
    if dst is not None:
        parts.append(str(dst))
    if a.get("NDA_LLADDR") is not None:
        parts.append("lladdr %s" % _first(a["NDA_LLADDR"]))
    if f.get("ifindex"):
        parts.append("dev %s" % f["ifindex"])
    flags = f.get("flags")
    if isinstance(flags, list):
        if "NTF_ROUTER" in flags:
            parts.append("router")
        if "NTF_PROXY" in flags:
            parts.append("proxy")
    state = f.get("state")
    if isinstance(state, list):
        parts.extend(s[4:] if s.startswith("NUD_") else s for s in state)
    if not parts:
        return None
    return " ".join(parts)


def _rule(d):
    f, a = d.fields, d.attrs
    fam = f.get("family")
    parts = []
    if a.get("FRA_PRIORITY") is not None:
        parts.append("priority %s" % a["FRA_PRIORITY"])
    src = a.get("FRA_SRC")
    parts.append("from %s" % (_prefix(src, f.get("src_len"), fam)
                              if src is not None else "all"))
    dst = a.get("FRA_DST")
    if dst is not None:
        parts.append("to %s" % _prefix(dst, f.get("dst_len"), fam))
    if a.get("FRA_IIFNAME"):
        parts.append("iif %s" % a["FRA_IIFNAME"])
    if a.get("FRA_OIFNAME"):
        parts.append("oif %s" % a["FRA_OIFNAME"])
    if a.get("FRA_FWMARK") is not None:
        parts.append("fwmark 0x%x" % a["FRA_FWMARK"])
    action = f.get("action")
    if action == "FR_ACT_TO_TBL":
        table = a.get("FRA_TABLE", f.get("table"))
        table = RT_TABLE_NAMES.get(table, table) if isinstance(table, int) \
            else table
        parts.append("lookup %s" % table)
    elif action == "FR_ACT_GOTO":
        parts.append("goto %s" % a.get("FRA_GOTO", "?"))
    elif isinstance(action, str):
        nm = {v: k for k, v in __import__(
            "nlbpf.decode.names", fromlist=["FR_ACT_NAMES"]
        ).FR_ACT_NAMES.items()}.get(action)
        parts.append(FR_ACT_IP.get(nm, action))
    proto = a.get("FRA_PROTOCOL")
    if isinstance(proto, int) and proto:
        parts.append("proto %s" % RT_PROTO_NAMES.get(proto, proto))
    return " ".join(parts)


def _handle(h):
    if not isinstance(h, int):
        return str(h)
    major, minor = h >> 16, h & 0xFFFF
    if minor == 0:
        return "%x:" % major
    return "%x:%x" % (major, minor)


def _tc(d):
    f, a = d.fields, d.attrs
    word = {36: "qdisc", 37: "qdisc", 38: "qdisc", 40: "class", 41: "class",
            42: "class", 44: "filter", 45: "filter", 46: "filter",
            100: "chain", 101: "chain", 102: "chain"}.get(d.type, "tc")
    parts = [word]
    if a.get("TCA_KIND"):
        parts.append(str(a["TCA_KIND"]))
    if f.get("index"):
        parts.append("dev %s" % f["index"])
    if word == "filter":
        info = f.get("info") or 0
        if f.get("parent") is not None:
            parts.append("parent %s" % _parent(f["parent"]))
        parts.append("pref %d protocol 0x%04x" % (info >> 16,
                                                  _ntohs(info & 0xFFFF)))
        if a.get("TCA_CHAIN") is not None:
            parts.append("chain %s" % a["TCA_CHAIN"])
    else:
        if f.get("handle") is not None and (word != "qdisc" or f.get("handle")):
            parts.append("%s %s" % ("classid" if word == "class" else "handle",
                                    _handle(f["handle"])))
        if f.get("parent") is not None:
            parts.append("parent %s" % _parent(f["parent"]))
    return " ".join(parts)


def _parent(p):
    if p == 0xFFFFFFFF:
        return "ffff:ffff"
    if p == 0xFFFFFFF1:
        return "ffff:fff1"
    return _handle(p)


def _ntohs(x):
    return ((x & 0xFF) << 8) | (x >> 8)


def _nexthop(d):
    a = d.attrs
    parts = []
    if "NHA_ID" in a:
        parts.append("id %s" % a["NHA_ID"])
    if a.get("NHA_GATEWAY") is not None:
        parts.append("via %s" % a["NHA_GATEWAY"])
    if "NHA_OIF" in a:
        parts.append("oif %s" % a["NHA_OIF"])
    if isinstance(a.get("NHA_GROUP"), list):
        parts.append("group " + "/".join(
            "%s,%s" % (g.get("id"), g.get("weight")) if g.get("weight") != 1
            else str(g.get("id")) for g in a["NHA_GROUP"]))
    if a.get("NHA_BLACKHOLE"):
        parts.append("blackhole")
    return " ".join(parts) if parts else None


_ROUTE = {}
for _t in (24, 25, 26):
    _ROUTE[_t] = _route
for _t in (16, 17, 18, 19):
    _ROUTE[_t] = _link
for _t in (20, 21, 22):
    _ROUTE[_t] = _addr
for _t in (28, 29, 30):
    _ROUTE[_t] = _neigh
for _t in (32, 33, 34):
    _ROUTE[_t] = _rule
for _t in (36, 37, 38, 40, 41, 42, 44, 45, 46, 100, 101, 102):
    _ROUTE[_t] = _tc
for _t in (104, 105, 106):
    _ROUTE[_t] = _nexthop


# -- generic netlink -------------------------------------------------------------
def _genl(d):
    a = d.attrs
    if d.family == "nlctrl":
        name = a.get("CTRL_ATTR_FAMILY_NAME")
        fid = a.get("CTRL_ATTR_FAMILY_ID")
        if name is None and fid is None:
            return "family nlctrl cmd %s%s" % (
                _cmd(d), " (dump)" if "NLM_F_DUMP" in d.flag_names else "")
        parts = ["family %s" % (name if name is not None else "?")]
        if fid is not None:
            parts.append("id %s" % fid)
        if a.get("CTRL_ATTR_VERSION") is not None and fid is not None:
            parts.append("version %s" % a["CTRL_ATTR_VERSION"])
        ops = a.get("CTRL_ATTR_OPS")
        if isinstance(ops, list) and ops:
            parts.append("ops %d" % len(ops))
        groups = a.get("CTRL_ATTR_MCAST_GROUPS")
        if isinstance(groups, list) and groups:
            parts.append("groups " + ",".join(
                str(g.get("CTRL_ATTR_MCAST_GRP_NAME")) for g in groups
                if isinstance(g, dict)))
        return " ".join(parts)
    fam = d.family or ("0x%x" % d.type if d.type is not None else "?")
    cmd = _cmd(d)
    line = "family %s %s" % (fam, cmd if cmd.startswith("cmd ") else
                             "cmd " + cmd)
    extra = []
    for k, v in (a or {}).items():
        if _scalar(v) and not (isinstance(v, str) and len(v) > 40):
            extra.append("%s=%s" % (k, v))
        if len(extra) >= 4:
            break
    return line + (" " + " ".join(extra) if extra else "")


def _cmd(d):
    if d.type_name and "." in d.type_name:
        return d.type_name.split(".", 1)[1]
    return "?" if d.cmd is None else str(d.cmd)     # cut before the genl header


# -- nftables ---------------------------------------------------------------------
def _nft(d):
    f, a = d.fields, d.attrs
    fam = NFPROTO_NFT.get(f.get("nfgen_family"), f.get("nfgen_family"))
    obj = (d.type_name or "").replace("NFT_MSG_", "")
    for verb in ("NEW", "GET", "DEL", "DESTROY"):
        if obj.startswith(verb):
            obj = obj[len(verb):]
            break
    obj = obj.lower()
    verb = (d.type_name or "").replace("NFT_MSG_", "")[:len(
        (d.type_name or "").replace("NFT_MSG_", "")) - len(obj)].lower()

    def g(*keys):
        for k in keys:
            if a.get(k) is not None:
                return a[k]
        return None
    parts = [verb, obj] if verb else [obj]
    if obj == "table":
        parts += [fam, g("NFTA_TABLE_NAME")]
    elif obj == "chain":
        parts += [fam, g("NFTA_CHAIN_TABLE"), g("NFTA_CHAIN_NAME")]
        hook = a.get("NFTA_CHAIN_HOOK")
        if isinstance(hook, dict) and hook.get("NFTA_HOOK_HOOKNUM") is not None:
            parts.append("hook %s prio %s" % (hook.get("NFTA_HOOK_HOOKNUM"),
                                              hook.get("NFTA_HOOK_PRIORITY")))
    elif obj.startswith("rule"):
        parts += [fam, g("NFTA_RULE_TABLE"), g("NFTA_RULE_CHAIN")]
        if a.get("NFTA_RULE_HANDLE") is not None:
            parts.append("handle %s" % a["NFTA_RULE_HANDLE"])
    elif obj.startswith("setelem"):
        parts += [fam, g("NFTA_SET_ELEM_LIST_TABLE"),
                  g("NFTA_SET_ELEM_LIST_SET")]
    elif obj == "set":
        parts += [fam, g("NFTA_SET_TABLE"), g("NFTA_SET_NAME")]
    elif obj == "gen":
        if a.get("NFTA_GEN_ID") is not None:
            parts.append("id %s" % a["NFTA_GEN_ID"])
    elif obj == "flowtable":
        parts += [fam, g("NFTA_FLOWTABLE_TABLE"), g("NFTA_FLOWTABLE_NAME")]
    else:
        parts.append(fam)
    parts = [str(p) for p in parts if p not in (None, "")]
    return " ".join(parts) if parts else None


# -- sock_diag ---------------------------------------------------------------------
def _sock_diag(d):
    f, a = d.fields, d.attrs
    if "sdiag_family" in f:     # request
        parts = [str(f["sdiag_family"])]
        proto = f.get("sdiag_protocol")
        if proto is not None:
            parts.append(str(proto))
        for k in ("idiag_states", "udiag_states"):
            if isinstance(f.get(k), list):
                parts.append("states " + ",".join(
                    s[4:] if s.startswith("TCP_") else s for s in f[k]))
        for k in ("idiag_ext", "udiag_show", "ndiag_show", "pdiag_show"):
            if isinstance(f.get(k), list) and f[k]:
                parts.append("show " + ",".join(f[k]))
        return " ".join(parts)
    if "idiag_family" in f:
        inv = {v: k for k, v in TCP_STATE_NAMES.items()}
        st = SS_STATE_NAMES.get(inv.get(f.get("idiag_state")),
                                f.get("idiag_state"))
        fam = f.get("idiag_family")
        fmt = "[%s]:%s" if fam == "AF_INET6" else "%s:%s"
        line = "%s %s %s -> %s" % (
            fam, st, fmt % (f.get("idiag_src"), f.get("idiag_sport")),
            fmt % (f.get("idiag_dst"), f.get("idiag_dport")))
        if f.get("idiag_inode") is not None:
            line += " ino %s" % f["idiag_inode"]
        if a.get("INET_DIAG_CONG"):
            line += " cong %s" % a["INET_DIAG_CONG"]
        return line
    if "udiag_family" in f:
        line = "unix %s %s ino %s" % (f.get("udiag_type"), f.get("udiag_state"),
                                      f.get("udiag_ino"))
        if a.get("UNIX_DIAG_NAME"):
            line += " %s" % a["UNIX_DIAG_NAME"]
        if a.get("UNIX_DIAG_PEER") is not None:
            line += " peer %s" % a["UNIX_DIAG_PEER"]
        return line
    if "ndiag_family" in f:
        return "netlink %s portid %s ino %s" % (
            f.get("ndiag_protocol"), f.get("ndiag_portid"), f.get("ndiag_ino"))
    if "pdiag_family" in f:
        return "packet %s proto 0x%04x ino %s" % (
            f.get("pdiag_type"), f.get("pdiag_num") or 0, f.get("pdiag_ino"))
    return None


# -- xfrm --------------------------------------------------------------------------
def _lc(name, prefix):
    if isinstance(name, str) and name.startswith(prefix):
        return name[len(prefix):].lower()
    return _q(name)


def _q(v):
    """A field of a message cut short: '?' when missing, hex when still raw."""
    if v is None:
        return "?"
    return bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v


def _xfrm(d):
    f, a = d.fields, d.attrs
    parts = []
    sel = f.get("sel")
    ident = f.get("id")
    if isinstance(ident, dict):          # an SA
        parts += ["src %s" % _q(f.get("saddr")), "dst %s" % _q(ident.get("daddr")),
                  "proto %s" % _lc(ident.get("proto"), "IPPROTO_"),
                  "spi 0x%08x" % (ident.get("spi") or 0)]
        if f.get("reqid") is not None:
            parts.append("reqid %s" % f["reqid"])
        if f.get("mode") is not None:
            parts.append("mode %s" % _lc(f["mode"], "XFRM_MODE_"))
    elif "spi" in f:                     # an SA id
        parts += ["dst %s" % _q(f.get("daddr")),
                  "proto %s" % _lc(f.get("proto"), "IPPROTO_"),
                  "spi 0x%08x" % (f.get("spi") or 0)]
        if a.get("XFRMA_SRCADDR"):
            parts.insert(0, "src %s" % a["XFRMA_SRCADDR"])
    elif isinstance(sel, dict):          # a policy
        parts += ["src %s/%s" % (_q(sel.get("saddr")), _q(sel.get("prefixlen_s"))),
                  "dst %s/%s" % (_q(sel.get("daddr")), _q(sel.get("prefixlen_d")))]
        if f.get("dir") is not None:
            parts.append("dir %s" % _lc(f["dir"], "XFRM_POLICY_"))
        if f.get("priority") is not None:
            parts.append("priority %s" % f["priority"])
        if f.get("action") == "XFRM_POLICY_BLOCK":
            parts.append("action block")
        for tmpl in a.get("XFRMA_TMPL") or ():
            if isinstance(tmpl, dict):
                parts.append("tmpl src %s dst %s proto %s reqid %s mode %s" % (
                    _q(tmpl.get("saddr")), _q(tmpl.get("daddr")),
                    _lc(tmpl.get("proto"), "IPPROTO_"), tmpl.get("reqid"),
                    _lc(tmpl.get("mode"), "XFRM_MODE_")))
    for k in ("XFRMA_ALG_CRYPT", "XFRMA_ALG_AUTH", "XFRMA_ALG_AUTH_TRUNC",
              "XFRMA_ALG_AEAD", "XFRMA_ALG_COMP"):
        alg = a.get(k)
        if isinstance(alg, dict):
            parts.append("%s %s" % (k[len("XFRMA_ALG_"):].lower(),
                                    alg.get("alg_name")))
    if not parts:
        return None
    return " ".join(parts)


def _connector(d):
    f = d.fields
    if "idx" not in f:
        return None
    line = "cn idx %s val %s" % (f.get("idx"), f.get("val"))
    if "what" in f:
        line += " %s" % f["what"]
        skip = {"idx", "val", "seq", "ack", "len", "flags", "what", "cpu",
                "timestamp_ns"}
        extra = ["%s=%s" % (k, v) for k, v in f.items()
                 if k not in skip and _scalar(v)]
        if extra:
            line += " " + " ".join(extra[:_MAX_GENERIC])
    return line


def _uevent(d):
    f, a = d.fields, d.attrs
    parts = []
    if f.get("action"):
        parts.append("%s %s" % (f["action"], f.get("devpath", "")))
    elif a.get("ACTION"):
        parts.append("%s %s" % (a["ACTION"], a.get("DEVPATH", "")))
    for k in ("SUBSYSTEM", "INTERFACE", "DEVNAME", "SEQNUM"):
        if a.get(k):
            parts.append("%s=%s" % (k, a[k]))
    return " ".join(parts)


def _audit(d):
    text = d.fields.get("text")
    if not text:
        return None
    if len(text) > 200:
        text = text[:200] + "..."
    return text
