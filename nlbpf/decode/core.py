"""decode(): one netlink message (nlmsghdr first) -> Decoded.

The nlmsghdr, NLMSG_ERROR/NLMSG_DONE and the attribute robustness layer are
handled here and in engine.py; payloads are decoded with pyroute2's message
classes chosen from the tables in tables.py.  decode() never raises.

engine.py, classes.py and tables.py are imported inside the functions that use
them: they load pyroute2 (~170 ms), which a live command should pay for when the
first message is decoded, not before its Tracing line.
"""
import re
import struct

from ..model import PROTOCOLS
from ..netlink import (NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
                       NLMSG_NAMES, headerless)
from .errnos import errno_name, strerror
from .genl import GENL_ID_CTRL, GenlFamilies, command_name, message_class
from .names import RTNL_FAMILY_NAMES
from .summary import summarize


_COMMON_FLAGS = ((0x1, "NLM_F_REQUEST"), (0x2, "NLM_F_MULTI"),
                 (0x4, "NLM_F_ACK"), (0x8, "NLM_F_ECHO"),
                 (0x10, "NLM_F_DUMP_INTR"), (0x20, "NLM_F_DUMP_FILTERED"))
_KIND_FLAGS = {
    "get": ((0x300, "NLM_F_DUMP"), (0x100, "NLM_F_ROOT"),
            (0x200, "NLM_F_MATCH"), (0x400, "NLM_F_ATOMIC")),
    "new": ((0x100, "NLM_F_REPLACE"), (0x200, "NLM_F_EXCL"),
            (0x400, "NLM_F_CREATE"), (0x800, "NLM_F_APPEND")),
    "del": ((0x100, "NLM_F_NONREC"), (0x200, "NLM_F_BULK")),
    "ack": ((0x100, "NLM_F_CAPPED"), (0x200, "NLM_F_ACK_TLVS")),
}
_HDR = struct.Struct("=IHHII")
_MAX_ECHO_DEPTH = 2


def flag_names(flags, type=None, protocol=0, kind=None):
    """nlmsg_flags as the kernel/strace name them.

    The meaning of the 0x100..0x800 bits depends on the message: ``kind``
    ("get", "new", "del", "ack") says which set applies; when omitted it is
    derived from ``type`` and ``protocol`` the way strace does (NLMSG_ERROR
    and NLMSG_DONE -> ack; rtnetlink by type & 3; netfilter, xfrm by name;
    sock_diag -> get; generic netlink requests -> get).  Bits without a name
    come last as one hex string.
    """
    try:
        flags = int(flags)
    except (TypeError, ValueError):
        return []
    if kind is None and type is not None:
        kind = _kind_of(protocol, type, None, flags)
    out = []
    rest = flags
    for bit, name in _COMMON_FLAGS:
        if rest & bit:
            out.append(name)
            rest &= ~bit
    for bit, name in _KIND_FLAGS.get(kind, ()):
        if rest & bit == bit:
            out.append(name)
            rest &= ~bit
    if rest:
        out.append("0x%x" % rest)
    return out


_GET_RE = re.compile(r"GET|DUMP|LIST|SAVE")
_NEW_RE = re.compile(r"NEW|ADD|CREATE")
_DEL_RE = re.compile(r"DEL|DESTROY|REMOVE|FLUSH")


def _kind_from_name(name):
    if not name:
        return None
    base = name.rsplit(".", 1)[-1]
    if _GET_RE.search(base):
        return "get"
    if _NEW_RE.search(base):
        return "new"
    if _DEL_RE.search(base):
        return "del"
    return None


def _kind_of(protocol, mtype, type_name, flags):
    if mtype in (NLMSG_ERROR, NLMSG_DONE):
        return "ack"
    if mtype < 16:
        return None
    if protocol == 0:
        if mtype == 49:
            return "get"
        return ("new", "del", "get", None)[mtype & 3]
    if protocol == 4:
        return "get"
    if protocol in (12, 6):
        if type_name is None:
            type_name = _type_name_only(protocol, mtype)
        return _kind_from_name(type_name)
    if protocol == 16:
        kind = _kind_from_name(type_name) if type_name else None
        if kind is None and flags & NLM_F_REQUEST:
            kind = "get"
        return kind
    return None


def _type_name_only(protocol, mtype):
    """Type name without looking at the payload (no pyroute2 needed for
    the control types)."""
    if mtype in NLMSG_NAMES:
        return NLMSG_NAMES[mtype]
    t = _tables()
    if t is None:
        return "0x%x" % mtype
    if protocol == 0:
        return t.RTM_NAMES.get(mtype) or "0x%x" % mtype
    if protocol == 4:
        return t.SOCK_DIAG_NAMES.get(mtype) or "0x%x" % mtype
    if protocol == 12:
        return t.nf_type_name(mtype) or "0x%x" % mtype
    if protocol == 6:
        return t.XFRM_NAMES.get(mtype) or "0x%x" % mtype
    if protocol == 9:
        return t.AUDIT_NAMES.get(mtype) or "0x%x" % mtype
    if protocol == 7:
        return t.SELINUX_NAMES.get(mtype) or "0x%x" % mtype
    return "0x%x" % mtype


_TABLES = None


def _tables():
    """tables.py imports pyroute2; load it once, on first use."""
    global _TABLES
    if _TABLES is None:
        try:
            from . import tables
            _TABLES = tables
        except Exception:       # pragma: no cover - pyroute2 missing/broken
            _TABLES = False
    return _TABLES or None


class Decoded:
    """One decoded netlink message.  See decode().

    protocol, protocol_name   netlink protocol (0, "route")
    length, type, flags, seq, portid
                              the nlmsghdr (length as claimed; None when the
                              bytes stop before a header field)
    type_name                 RTM_NEWROUTE, NLMSG_ERROR, NFT_MSG_NEWRULE,
                              nlctrl.CTRL_CMD_GETFAMILY, "0x1d" if unknown
    flag_names                nlmsg_flags named for this message's kind
    kind                      "get"/"new"/"del"/"ack"/None: which meaning the
                              0x100..0x800 flag bits have
    family, cmd               generic netlink family name and command
    fields                    the fixed header after nlmsghdr (rtmsg, ...)
                              with constants named (family "AF_INET", table
                              "main", flags ["IFF_UP", ...])
    attrs                     attribute name -> value: nests are dicts,
                              arrays and repeated attributes lists,
                              addresses text, bytes hex, unknown types
                              "UNKNOWN_<n>"
    errno, error, strerror    NLMSG_ERROR/NLMSG_DONE status: positive errno
                              (0 = ack / clean end), kernel errno name, text
    extack, extack_attrs      NLMSGERR_ATTR_MSG and every extack TLV (with
                              offending_attr / missing_attr resolved)
    echoed, echo_capped       the request an NLMSG_ERROR carries back
    truncated                 fewer bytes than nlmsg_len (snap length)
    malformed                 None or the first structural problem found
    payload                   bytes no decoder claimed (unknown types)
    """
    __slots__ = (
        "protocol", "protocol_name", "length", "type", "type_name", "flags",
        "flag_names", "seq", "portid", "kind", "family", "cmd", "fields",
        "attrs", "errno", "error", "strerror", "extack", "extack_attrs",
        "echoed", "echo_capped", "truncated", "malformed", "payload",
        "_taught")

    def __init__(self, protocol=0):
        self.protocol = protocol
        self.protocol_name = PROTOCOLS.get(protocol, str(protocol))
        self.length = None          # nlmsg_len as claimed
        self.type = None
        self.type_name = None
        self.flags = 0
        self.flag_names = []
        self.seq = None
        self.portid = None
        self.kind = None            # get/new/del/ack: meaning of high flags
        self.family = None          # generic netlink family name
        self.cmd = None             # generic netlink command
        self.fields = {}
        self.attrs = {}
        self.errno = None
        self.error = None
        self.strerror = None
        self.extack = None
        self.extack_attrs = {}
        self.echoed = None
        self.echo_capped = None
        self.truncated = False
        self.malformed = None
        self.payload = None         # bytes nobody decoded (unknown types)
        self._taught = False

    @property
    def is_error(self):
        return bool(self.errno)

    @property
    def is_ack(self):
        return self.type == NLMSG_ERROR and self.errno == 0

    def __repr__(self):
        return "<Decoded %s %s len=%s%s%s>" % (
            self.protocol_name, self.type_name, self.length,
            " truncated" if self.truncated else "",
            " malformed=%r" % self.malformed if self.malformed else "")

    def to_json(self):
        """Plain JSON-able dict (bytes as hex)."""
        out = {
            "protocol": self.protocol, "protocol_name": self.protocol_name,
            "length": self.length, "type": self.type,
            "type_name": self.type_name, "flags": self.flags,
            "flag_names": list(self.flag_names), "seq": self.seq,
            "portid": self.portid,
        }
        if self.family is not None:
            out["family"] = self.family
            out["cmd"] = self.cmd
        out["fields"] = _jsonable(self.fields)
        out["attrs"] = _jsonable(self.attrs)
        out["truncated"] = self.truncated
        out["malformed"] = self.malformed
        if self.type in (NLMSG_ERROR, NLMSG_DONE) or self.errno is not None:
            out["errno"] = self.errno
            out["error"] = self.error
            out["strerror"] = self.strerror
            out["extack"] = self.extack
            if self.extack_attrs:
                out["extack_attrs"] = _jsonable(self.extack_attrs)
            if self.type == NLMSG_ERROR:
                out["echoed"] = self.echoed.to_json() if self.echoed else None
        if self.payload:
            out["payload"] = bytes(self.payload).hex()
        return out

    def summary(self):
        """One line, like iproute2/strace would print the message."""
        try:
            return summarize(self)
        except Exception:
            return "%s (%d bytes)" % (self.type_name or "?", self.length or 0)


def _jsonable(v, depth=0):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if depth > 40:
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x, depth + 1) for x in v]
    return str(v)


def decode(protocol, data, families=None):
    """Decode ONE netlink message (starting at its nlmsghdr).

    ``data`` may be cut short (snap length) or be garbage: the result says
    so (``truncated``, ``malformed``) and keeps whatever was decoded.  Never
    raises.  ``families`` resolves generic netlink family ids, and learns
    from the nlctrl replies it is shown.
    """
    try:
        try:
            protocol = int(protocol)
        except (TypeError, ValueError):
            protocol = -1
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data) if data is not None else b""
        if families is not None and not isinstance(families, GenlFamilies):
            families = GenlFamilies(families) if isinstance(families, dict) \
                else None
        return _decode(protocol, bytes(data), families, 0, False)
    except Exception as exc:  # last resort: never raise
        d = Decoded(protocol if isinstance(protocol, int) else -1)
        try:
            _header(d, data if isinstance(data, (bytes, bytearray)) else b"")
        except Exception:
            pass
        d.malformed = "decoder error: %s" % type(exc).__name__
        return d


def _header(d, data):
    n = len(data)
    if n >= 4:
        d.length = struct.unpack_from("=I", data, 0)[0]
    if n >= 6:
        d.type = struct.unpack_from("=H", data, 4)[0]
    if n >= 8:
        d.flags = struct.unpack_from("=H", data, 6)[0]
    if n >= 12:
        d.seq = struct.unpack_from("=I", data, 8)[0]
    if n >= 16:
        d.portid = struct.unpack_from("=I", data, 12)[0]


def _decode(protocol, data, families, depth, echo_capped):
    from .engine import Ctx
    d = Decoded(protocol)
    if headerless(protocol, data):
        return _uevent(d, data)
    _header(d, data)
    n = len(data)
    ctx = Ctx()
    if d.type is not None:
        d.type_name = _type_name_only(protocol, d.type) \
            if protocol != 16 or d.type < 16 else None
    if n < 16:
        d.truncated = d.length is None or d.length > n
        if d.length is not None and d.length < 16:
            d.malformed = "nlmsg_len %d < 16" % d.length
        if d.type is not None:
            if d.type_name is None:
                d.type_name = "0x%x" % d.type
            d.kind = _kind_of(protocol, d.type, d.type_name, d.flags)
            d.flag_names = flag_names(d.flags, kind=d.kind)
        return d
    if d.length == 0:
        d.malformed = "nlmsg_len is 0"
    elif d.length < 16:
        d.malformed = "nlmsg_len %d < 16" % d.length
    if d.malformed:
        if d.type_name is None:
            d.type_name = "0x%x" % d.type
        d.kind = _kind_of(protocol, d.type, d.type_name, d.flags)
        d.flag_names = flag_names(d.flags, kind=d.kind)
        return d
    clamped = n < d.length
    d.truncated = clamped
    if echo_capped:
        clamped = False
        d.truncated = False
        buf = data[:16]
    else:
        buf = data[:d.length] if not clamped else data
    t = d.type
    if t == NLMSG_ERROR:
        _error(d, buf, clamped, families, depth, ctx)
    elif t == NLMSG_DONE and protocol != 11:
        _done(d, buf, clamped, ctx)
    elif echo_capped:
        _payload(d, buf, clamped, families, ctx, header_only=True)
    else:
        _payload(d, buf, clamped, families, ctx)
    if d.type_name is None:
        d.type_name = "0x%x" % t
    if d.kind is None:
        d.kind = _kind_of(protocol, t, d.type_name, d.flags)
    d.flag_names = flag_names(d.flags, kind=d.kind)
    if ctx.malformed and d.malformed is None:
        d.malformed = ctx.malformed
    return d


def _uevent(d, data):
    """kobject uevents are not nlmsghdr-framed: ACTION@DEVPATH\\0K=V\\0..."""
    d.length = len(data)
    d.type_name = "uevent"
    parts = data.split(b"\0")
    if data.startswith(b"libudev\0"):
        d.type_name = "udev"
        # struct udev_monitor_netlink_header: properties at an offset
        if len(data) >= 40:
            off = struct.unpack_from("=I", data, 16)[0]
            ln = struct.unpack_from("=I", data, 20)[0]
            parts = data[off:off + ln].split(b"\0")
        else:
            d.truncated = True
            parts = []
    elif parts and b"@" in parts[0]:
        action, _, devpath = parts[0].partition(b"@")
        d.fields = {"action": action.decode("utf-8", "replace"),
                    "devpath": devpath.decode("utf-8", "replace")}
        parts = parts[1:]
    attrs = {}
    for p in parts:
        if not p:
            continue
        k, sep, v = p.partition(b"=")
        if sep:
            attrs[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    d.attrs = attrs
    return d


def _decode_class(cls, d, buf, clamped, ctx):
    from .engine import decode_top, fields_size, quiet
    work = bytearray(buf)
    if clamped:
        struct.pack_into("=I", work, 0, len(work))
    with quiet():
        fields, attrs, inst = decode_top(cls, work, ctx, clamped)
    t = _tables()
    d.fields = t.name_fields(cls, fields) if t else fields
    d.attrs = attrs
    fsize = fields_size(cls)
    if t and cls in t.TLV_ONLY and fsize is not None and \
            len(work) > 16 + fsize:
        # a family/subsystem pyroute2 has no class for: the attributes are
        # still attributes
        from .engine import align4, generic_chain
        with quiet():
            d.attrs = generic_chain(work, align4(16 + fsize), len(work), 1,
                                    ctx, clamped)
    plen = len(buf) - 16
    if fsize is not None and plen < fsize and not clamped:
        return plen, fsize
    return None


def _payload(d, buf, clamped, families, ctx, header_only=False):
    t = _tables()
    protocol, mtype = d.protocol, d.type
    payload = buf[16:]
    if mtype < 16:
        d.type_name = NLMSG_NAMES.get(mtype)
        if payload and protocol != 11:
            d.payload = bytes(payload)
        if protocol == 11 and mtype == NLMSG_DONE and t:
            _connector(d, buf, clamped, ctx, t)
        return
    if t is None:
        d.payload = bytes(payload)
        return
    cls = None
    if protocol == 0:
        d.type_name = t.RTM_NAMES.get(mtype)
        cls = t.ROUTE_CLASSES.get(mtype)
    elif protocol == 16:
        cls = _genl(d, payload, families, t)
    elif protocol == 12:
        d.type_name = t.nf_type_name(mtype)
        cls = t.nf_class(mtype) if d.type_name else None
    elif protocol == 4:
        d.type_name = t.SOCK_DIAG_NAMES.get(mtype)
        if d.type_name:
            cls = t.sock_diag_class(mtype, payload, d.flags)
    elif protocol == 6:
        d.type_name = t.XFRM_NAMES.get(mtype)
        d.kind = t.XFRM_KIND.get(mtype)
        cls = t.xfrm_class(mtype, d.flags) if d.type_name else None
    elif protocol == 9:
        d.type_name = t.AUDIT_NAMES.get(mtype)
        _audit(d, payload)
        return
    elif protocol == 7:
        d.type_name = t.SELINUX_NAMES.get(mtype)
        if len(payload) >= 4 and d.type_name:
            key = "val" if mtype == 0x10 else "seqno"
            fmt = "=i" if mtype == 0x10 else "=I"
            d.fields = {key: struct.unpack_from(fmt, payload, 0)[0]}
            return
    if header_only:
        return
    if cls is None:
        if payload:
            d.payload = bytes(payload)
        return
    short = _decode_class(cls, d, buf, clamped, ctx)
    if short is not None:
        plen, fsize = short
        if d.flags & 0x301 == 0x301 and protocol != 0:
            pass    # dump requests need not carry the header
        elif protocol == 0 and plen >= 1 and mtype & 3 == 2:
            # struct rtgenmsg: dump requests may send just the family
            fam = payload[0]
            d.fields = {"family": RTNL_FAMILY_NAMES.get(fam, fam)}
        elif plen > 0 or protocol != 0:
            ctx.bad("payload %d bytes, shorter than its %d-byte header"
                    % (plen, fsize))
    if protocol == 12 and mtype in (0x10, 0x11):
        rid = d.fields.get("res_id")
        if isinstance(rid, int):
            d.fields["res_id"] = t.NFNL_SUBSYS_NAMES.get(rid, rid)
    if protocol == 16:
        d.fields.pop("reserved", None)
        if d.family == "nlctrl" and families is not None:
            d._taught = families._learn(d)


def _genl(d, payload, families, t):
    mtype = d.type
    if mtype == GENL_ID_CTRL:
        fam = "nlctrl"
    elif families is not None:
        fam = families.name(mtype)
    else:
        fam = None
    request = bool(d.flags & NLM_F_REQUEST)
    d.family = fam
    if len(payload) < 1:
        d.type_name = fam or "0x%x" % mtype
        return None
    cmd = payload[0]
    d.cmd = cmd
    cname = command_name(fam, cmd, request)
    d.type_name = "%s.%s" % (fam or "0x%x" % mtype, cname)
    kind = _kind_from_name(cname) if not cname.startswith("cmd ") else None
    if kind is None and request:
        kind = "get"
    d.kind = kind
    return message_class(fam, cmd, request) if fam else t.GENLMSG


def _audit(d, payload):
    text = bytes(payload).rstrip(b"\0")
    if text and all(32 <= b < 127 or b in (9, 10) for b in text[:256]):
        d.fields = {"text": text.decode("ascii", "replace")}
    elif payload:
        d.payload = bytes(payload)


def _connector(d, buf, clamped, ctx, t):
    payload = buf[16:]
    cls = t.CN_MSG
    if len(payload) >= 24:
        idx, val = struct.unpack_from("=II", payload, 0)
        if idx == 1 and val == 1:
            what = struct.unpack_from("=I", payload, 20)[0]
            cls = t.PROC_EVENT_CLASSES.get(what, t.CN_MSG)
    _decode_class(cls, d, buf, clamped, ctx)
    d.type_name = "NLMSG_DONE"
    d.kind = None


def _error(d, buf, clamped, families, depth, ctx):
    payload = buf[16:]
    d.type_name = "NLMSG_ERROR"
    d.kind = "ack"
    if len(payload) < 4:
        if not clamped:
            ctx.bad("NLMSG_ERROR without an error code")
        return
    err = struct.unpack_from("=i", payload, 0)[0]
    if err > 0:
        ctx.bad("positive error code %d" % err)
    d.errno = -err if err <= 0 else err
    if d.errno:
        d.error = errno_name(d.errno)
        d.strerror = strerror(d.errno)
    capped = bool(d.flags & NLM_F_CAPPED) or err == 0
    d.echo_capped = capped
    rest = payload[4:]
    echo_len = 16
    if len(rest) >= 4:
        elen = struct.unpack_from("=I", rest, 0)[0]
        if not capped and elen >= 16:
            echo_len = elen
        if depth < _MAX_ECHO_DEPTH:
            d.echoed = _decode(d.protocol, bytes(rest[:echo_len]), families,
                               depth + 1, capped)
            if d.echoed is not None and d.echoed.malformed and \
                    ctx.malformed is None and not clamped:
                ctx.bad("echoed request: " + d.echoed.malformed)
    elif rest and not clamped:
        ctx.bad("NLMSG_ERROR with a partial echoed header")
    if d.flags & NLM_F_ACK_TLVS:
        _extack(d, buf, 16 + 4 + ((echo_len + 3) & ~3), clamped, ctx, rest)


def _done(d, buf, clamped, ctx):
    payload = buf[16:]
    d.type_name = "NLMSG_DONE"
    d.kind = "ack"
    if len(payload) < 4:
        return
    status = struct.unpack_from("=i", payload, 0)[0]
    d.errno = -status if status <= 0 else status
    if d.errno:
        d.error = errno_name(d.errno)
        d.strerror = strerror(d.errno)
    if d.flags & NLM_F_ACK_TLVS:
        _extack(d, buf, 16 + 4, clamped, ctx, None)


def _extack(d, buf, off, clamped, ctx, echo):
    from .classes import extack_msg
    from .engine import decode_top, quiet
    if off >= len(buf):
        return
    syn = bytearray(20) + bytearray(buf[off:])
    struct.pack_into("=I", syn, 0, len(syn))
    with quiet():
        _, attrs, _ = decode_top(extack_msg, syn, ctx, clamped)
    d.extack_attrs = dict(attrs)
    msg = attrs.get("NLMSGERR_ATTR_MSG")
    if isinstance(msg, str):
        d.extack = msg
    echoed = d.echoed
    if echoed is None or echo is None:
        return
    offs = attrs.get("NLMSGERR_ATTR_OFFS")
    if isinstance(offs, int) and not d.echo_capped:
        name = _attr_at(echoed, bytes(echo[:max(echoed.length or 0, 16)]),
                        offs)
        if name:
            d.extack_attrs["offending_attr"] = name
    miss = attrs.get("NLMSGERR_ATTR_MISS_TYPE")
    if isinstance(miss, int) and "NLMSGERR_ATTR_MISS_NEST" not in attrs:
        name = _attr_name(echoed, miss)
        if name:
            d.extack_attrs["missing_attr"] = name


def _message_class(d):
    t = _tables()
    if t is None or d.type is None:
        return None
    if d.protocol == 0:
        return t.ROUTE_CLASSES.get(d.type)
    if d.protocol == 12:
        return t.nf_class(d.type)
    return None


def _attr_name(d, rtype):
    from .engine import nla_table
    cls = _message_class(d)
    table = nla_table(cls) if cls is not None else None
    try:
        if table is not None and rtype in table:
            return table[rtype]["name"]
    except Exception:
        return None
    return None


def _attr_at(d, raw, offs):
    """Name of the attribute starting at ``offs`` in the echoed request."""
    from .engine import align4, fields_size, nla_table, scan_chain
    cls = _message_class(d)
    if cls is None:
        return None
    fsize = fields_size(cls)
    if fsize is None:
        return None
    path = []
    start, end = align4(16 + fsize), len(raw)
    for _ in range(8):
        table = nla_table(cls)
        entries, _p = scan_chain(raw, start, end)
        for off, hlen, rtype in entries:
            if off <= offs < off + hlen:
                try:
                    prime = table[rtype & 0x3FFF] if table is not None and \
                        (rtype & 0x3FFF) in table else None
                except Exception:
                    prime = None
                path.append(prime["name"] if prime else "UNKNOWN_%d" % (rtype & 0x3FFF))
                if off == offs or prime is None:
                    return ".".join(path)
                cls = prime["class"]
                if not isinstance(cls, type) or not cls.nla_map:
                    return ".".join(path)
                fs = fields_size(cls) or 0
                start, end = align4(off + 4 + fs), off + hlen
                break
        else:
            return ".".join(path) if path else None
    return ".".join(path) if path else None


__all__ = ["decode", "Decoded", "GenlFamilies", "errno_name", "flag_names",
           "strerror", "PROTOCOLS"]
