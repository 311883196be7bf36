"""The robustness layer between raw bytes and pyroute2's message classes.

pyroute2 decodes well-formed messages well, but it was written for what the
kernel sends, not for arbitrary captures: a zero-length attribute inside a
nested array loops forever, an attribute whose length overruns its parent
reads its neighbours, a short buffer raises ``struct.error`` from deep down,
and some class selectors raise ``KeyError`` (IFLA_PROTINFO outside
AF_BRIDGE).  So every attribute chain is scanned here first, with bounds,
before pyroute2 sees it:

* a chain with a bad entry is cut in front of it (a patched copy of the
  container, its length field rewritten) so pyroute2 only ever decodes a
  clean prefix; the bad entry is then kept as far as it can be (a truncated
  nest is decoded from what is there, anything else kept as hex) and the
  reason recorded;
* nested arrays are checked before pyroute2 iterates them;
* each attribute is decoded on its own, inside try/except; a failure only
  costs that attribute (hex, or its struct fields that fit);
* nesting depth and the total number of attributes are bounded.

Values come out as plain Python: dicts for nests and structs, lists for
arrays and repeated attributes, text for addresses, hex text for bytes.
"""
import logging
import socket
import struct
import threading
import types

from pyroute2.netlink import (NotInitialized, nla_base, nla_base_string,
                              nlmsg_atoms, nlmsg_base)

MAX_DEPTH = 16          # nesting levels below the message
MAX_NODES = 20000       # attributes converted per message

_HH = struct.Struct("=HH")
_ADDR_CLASSES = (nlmsg_atoms.target, nlmsg_atoms.ipaddr, nlmsg_atoms.ipXaddr,
                 nlmsg_atoms.lladdr, nlmsg_atoms.l2addr)
_HEX_CLASSES = (nlmsg_atoms.hex,)
_SCALAR_CLASSES = (
    nlmsg_atoms.uint8, nlmsg_atoms.uint16, nlmsg_atoms.uint32,
    nlmsg_atoms.uint64, nlmsg_atoms.int8, nlmsg_atoms.int16,
    nlmsg_atoms.int32, nlmsg_atoms.int64, nlmsg_atoms.be8, nlmsg_atoms.be16,
    nlmsg_atoms.be32, nlmsg_atoms.be64, nlmsg_atoms.sbe8, nlmsg_atoms.sbe16,
    nlmsg_atoms.sbe32, nlmsg_atoms.sbe64)
_SKIP_KEYS = frozenset(("header", "attrs", "value", "event"))


# -- pyroute2 logs warnings (with tracebacks) for what it cannot decode; in a
#    live observer that is noise, so it is muted for the decoding thread only.
_quiet = threading.local()


class _MuteWhileDecoding(logging.Filter):
    def filter(self, record):
        return not getattr(_quiet, "on", False)


_FILTER = _MuteWhileDecoding()
_muted_loggers = set()


def mute_pyroute2_logs():
    """Install the filter on root and every pyroute2 logger known so far."""
    names = [n for n in list(logging.root.manager.loggerDict)
             if n.startswith("pyroute2")]
    for logger in [logging.getLogger()] + [logging.getLogger(n) for n in names]:
        if id(logger) not in _muted_loggers:
            logger.addFilter(_FILTER)
            _muted_loggers.add(id(logger))


class quiet:
    """Context manager: pyroute2 log records are dropped in this thread."""
    __slots__ = ("prev",)

    def __enter__(self):
        self.prev = getattr(_quiet, "on", False)
        _quiet.on = True

    def __exit__(self, *exc):
        _quiet.on = self.prev
        return False


class Ctx:
    """Per-message decoding state: the first problem seen, a node budget."""
    __slots__ = ("malformed", "nodes", "truncated_attrs")

    def __init__(self):
        self.malformed = None
        self.nodes = 0
        self.truncated_attrs = 0

    def bad(self, why):
        if self.malformed is None:
            self.malformed = why


def align4(n):
    return (n + 3) & ~3


def scan_chain(buf, start, end):
    """Walk the attribute chain in buf[start:end] without decoding it.

    Returns (entries, problem): entries are (offset, nla_len, nla_type) of
    the well-formed prefix; problem is None or (offset, nla_len, kind) with
    kind "short" (nla_len < 4), "overrun" (past ``end``) or "trailing"
    (1..3 bytes left that cannot hold a header).
    """
    entries = []
    off = start
    while off + 4 <= end:
        hlen, rtype = _HH.unpack_from(buf, off)
        if hlen < 4:
            return entries, (off, hlen, "short")
        if off + hlen > end:
            return entries, (off, hlen, "overrun")
        entries.append((off, hlen, rtype))
        off += (hlen + 3) & ~3
    if start <= off < end:
        return entries, (off, end - off, "trailing")
    return entries, None


# -- class geometry, cached ------------------------------------------------
_fsize_cache = {}


def fields_size(cls):
    """Bytes of the fixed fields of a pyroute2 class (None if not static)."""
    try:
        return _fsize_cache[cls]
    except KeyError:
        pass
    size = 0
    try:
        for field in cls.fields:
            fmt = field[1]
            if not isinstance(fmt, str):
                size = None
                break
            size += struct.calcsize(fmt)
    except Exception:
        size = None
    _fsize_cache[cls] = size
    return size


_hsize_cache = {}


def header_size(header):
    try:
        return _hsize_cache[header]
    except KeyError:
        pass
    except TypeError:
        return 4
    try:
        size = sum(struct.calcsize(f[1]) for f in header) if header else 0
    except Exception:
        size = 4
    _hsize_cache[header] = size
    return size


# pyroute2 (0.9) keeps a class's compiled attribute map in class attributes of
# nlmsg_base, name-mangled, and has no public way to read them; a subclass inherits
# its parent's compiled map, and pyroute2 then decodes it with the parent's map.
# This is the one place nlbpf touches them: to read a map, and (own_nla_map) to
# give a class nlbpf makes a map of its own. pyroute2 is pinned <0.10 for them.
_COMPILED, _DECODE_MAP, _ENCODE_MAP = ("_nlmsg_base__compiled_nla", "_nlmsg_base__t_nla_map",
                                       "_nlmsg_base__r_nla_map")


def own_nla_map(namespace):
    """A new pyroute2 class's namespace, made to compile its own attribute map."""
    namespace.update({_COMPILED: False, _DECODE_MAP: None, _ENCODE_MAP: None})
    return namespace


def nla_table(cls, inst=None):
    """The compiled decode map of a pyroute2 class (compiling it if needed)."""
    table = getattr(cls, _DECODE_MAP, None)
    if table is None and cls.nla_map:
        try:
            (inst or cls()).compile_nla_table()
        except Exception:
            return None
        table = getattr(cls, _DECODE_MAP, None)
    return table


def partial_fields(cls, buf, off, end):
    """Decode the leading fields of ``cls`` that fit in buf[off:end]."""
    out = {}
    try:
        for field in cls.fields:
            name, fmt = field[0], field[1]
            if not isinstance(fmt, str):
                break
            size = struct.calcsize(fmt)
            if off + size > end:
                break
            value = struct.unpack_from(fmt, buf, off)
            off += size
            if name.startswith("_"):
                continue
            out[name] = value[0] if len(value) == 1 else list(value)
    except Exception:
        pass
    return out


# -- values ----------------------------------------------------------------
def plain(v, depth=0):
    """A pyroute2 value as JSON-able Python (bytes become hex text)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if depth > MAX_DEPTH:
        return None
    if isinstance(v, nlmsg_base):
        return struct_value(v, depth + 1)
    if isinstance(v, dict):
        return {str(k): plain(x, depth + 1) for k, x in v.items()
                if k != "header"}
    if isinstance(v, (set, frozenset)):
        return sorted((plain(x, depth + 1) for x in v), key=str)
    if isinstance(v, (list, tuple)):
        return [plain(x, depth + 1) for x in v]
    return str(v)


def struct_value(inst, depth=0):
    """The fields (and plain attrs) of an nlmsg_base as a dict."""
    out = {}
    for k, v in dict.items(inst):
        if k in _SKIP_KEYS or (isinstance(k, str) and k.startswith("_")):
            continue
        out[str(k)] = plain(v, depth + 1)
    attrs = dict.get(inst, "attrs")
    if isinstance(attrs, list) and depth <= MAX_DEPTH:
        for cell in attrs:
            try:
                name, value = cell[0], cell[1]
            except Exception:
                continue
            out[str(name)] = plain(value, depth + 1)
    return out


def raw_payload(inst):
    off = inst.offset
    try:
        hlen = _HH.unpack_from(inst.data, off)[0]
    except struct.error:
        return b""
    return bytes(inst.data[off + 4:off + max(hlen, 4)])


def addr_text(raw):
    """Address bytes as text by length: IPv4, IPv6, MAC; else hex."""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    if len(raw) == 6:
        return ":".join("%02x" % b for b in raw)
    return raw.hex()


def leaf_value(inst):
    if isinstance(inst, _HEX_CLASSES):
        raw = dict.get(inst, "value")
        if isinstance(raw, (bytes, bytearray)):
            return bytes(raw).hex()
        return raw_payload(inst).hex()
    v = inst.value
    if v is not NotInitialized:
        return plain(v)
    if dict.__contains__(inst, "value"):
        raw = dict.__getitem__(inst, "value")
        try:
            raw = inst.value_map.get(raw, raw)
        except TypeError:
            pass
        return plain(raw)
    return struct_value(inst)


# -- attributes ------------------------------------------------------------
class AttrDict(dict):
    """name -> value; a name seen twice holds a list of its values."""
    __slots__ = ("_multi",)

    def __init__(self):
        dict.__init__(self)
        self._multi = None

    def add(self, name, value):
        if name in self:
            if self._multi is None:
                self._multi = set()
            if name not in self._multi:
                self._multi.add(name)
                dict.__setitem__(self, name, [self[name], value])
            else:
                self[name].append(value)
        else:
            dict.__setitem__(self, name, value)


def unknown_name(rtype):
    return "UNKNOWN_%d" % (rtype & 0x3FFF)


# container class -> {type: NAME}: attribute types newer than a pyroute2
# class nested too deep to subclass cleanly (decoders go in ATTR_OVERRIDES)
EXTRA_NAMES = {}


def extra_name(owner, rtype):
    names = EXTRA_NAMES.get(type(owner))
    if names:
        name = names.get(rtype & 0x3FFF)
        if name:
            return name
    return unknown_name(rtype)


def make_child(owner, table, buf, off, length, rtype):
    """Instantiate the pyroute2 class for one attribute, like decode_nlas."""
    t = rtype & 0x3FFF
    prime = None
    if table is not None:
        try:
            if t in table:
                prime = table[t]
        except Exception:
            prime = None
    if prime is None:
        return (extra_name(owner, rtype),
                nla_base(data=buf, offset=off, length=length))
    name = prime["name"]
    cls = prime["class"]
    try:
        if isinstance(cls, types.FunctionType):
            cls = cls(owner, data=buf, offset=off)
        inst = cls(data=buf, offset=off, parent=owner, length=length,
                   init=prime["init"])
        inst._nla_array = prime["nla_array"]
        inst._nla_flags = rtype & 0xC000
    except Exception:
        inst = nlmsg_atoms.hex(data=buf, offset=off, length=length)
    return name, inst


def decode_chain(owner, slots, entries, ebuf, problem, pbuf, chain_end,
                 depth, ctx, clamped):
    """Attribute values of one container.

    ``entries`` (from scan_chain) index ``ebuf``; ``slots`` are pyroute2's
    own nla_slot list when it decoded that clean chain, else None and the
    entries are instantiated here one by one.  ``problem`` indexes ``pbuf``
    (the original buffer, where the bad entry still is) and ``chain_end`` is
    where the container ends in it.
    """
    attrs = AttrDict()
    table = None
    pairs = None
    if slots is not None and len(slots) == len(entries):
        pairs = []
        for slot, entry in zip(slots, entries):
            try:
                name, child = slot.cell
            except Exception:
                pairs = None
                break
            if name == "UNKNOWN":
                name = extra_name(owner, entry[2])
            pairs.append((name, child))
    if pairs is None:
        table = nla_table(type(owner), owner)
        pairs = [make_child(owner, table, ebuf, e[0], e[1], e[2])
                 for e in entries]
    for name, child in pairs:
        ctx.nodes += 1
        if ctx.nodes > MAX_NODES:
            ctx.bad("too many attributes")
            return attrs
        # a complete entry: anything wrong inside it is real, not the cut
        attrs.add(name, convert(owner, child, name, depth, ctx, False))
    if problem is None:
        return attrs
    off, hlen, kind = problem
    if kind == "trailing":
        if clamped:
            ctx.truncated_attrs += 1
        else:
            ctx.bad("%d stray bytes after the attributes" % hlen)
        return attrs
    if kind == "short":
        ctx.bad("attribute length %d < 4 at offset %d" % (hlen, off))
        return attrs
    if table is None:
        table = nla_table(type(owner), owner)
    avail = chain_end - off
    rtype = _HH.unpack_from(pbuf, off)[1]
    # keep what the overrunning attribute holds: a copy with its length cut
    piece = bytearray(pbuf[off:chain_end])
    struct.pack_into("=H", piece, 0, avail)
    name, child = make_child(owner, table, piece, 0, avail, rtype)
    if clamped:
        # the message was cut (snaplen), not built wrong
        ctx.truncated_attrs += 1
    else:
        ctx.bad("attribute %s length %d overruns its container "
                "(%d bytes left)" % (name, hlen, avail))
    attrs.add(name, convert(owner, child, name, depth, ctx, True))
    return attrs


# attribute name -> function(payload bytes) -> value, for the few places
# where pyroute2's class for an attribute is wrong (filled by classes.py)
ATTR_OVERRIDES = {}
NLA_F_NESTED = 0x8000


def convert(owner, child, name, depth, ctx, clamped):
    """Decode one attribute instance into a plain value."""
    cls = type(child)
    fix = ATTR_OVERRIDES.get(name)
    if fix is not None:
        try:
            return fix(raw_payload(child))
        except Exception:
            return raw_payload(child).hex()
    if cls is nla_base:     # no class for this type: walk nests generically
        return generic_value(child.data, child.offset, depth, ctx, clamped)
    if child._nla_array:
        return convert_array(owner, child, name, depth, ctx, clamped)
    if cls.nla_map:
        return convert_nest(owner, child, name, depth, ctx, clamped)
    if not child.decoded and not isinstance(child, nla_base_string):
        # pyroute2 unpacks fixed-size values with the buffer as the only
        # bound: a short attribute would read its padding and neighbours
        need = fields_size(cls)
        if need:
            have = len(raw_payload(child))
            if have < need:
                return leaf_fallback(child, name, ctx, clamped)
    try:
        # a custom decode() of the parent may have decoded it already, and
        # pyroute2 cannot decode an attribute twice
        if not child.decoded:
            child.decode()
        return leaf_value(child)
    except Exception:
        return leaf_fallback(child, name, ctx, clamped)


def leaf_fallback(child, name, ctx, clamped):
    raw = raw_payload(child)
    if isinstance(child, _ADDR_CLASSES) and raw:
        try:
            return addr_text(raw)
        except Exception:
            return raw.hex()
    if isinstance(child, _SCALAR_CLASSES):
        if not clamped:
            ctx.bad("attribute %s has a bad length (%d bytes)" % (name, len(raw)))
        return raw.hex()
    if getattr(type(child), "fields", None):
        part = partial_fields(type(child), child.data, child.offset + 4,
                              child.offset + 4 + len(raw))
        if part:
            return part
    return raw.hex()


def convert_nest(owner, child, name, depth, ctx, clamped):
    if depth >= MAX_DEPTH:
        ctx.bad("nesting too deep (> %d levels)" % MAX_DEPTH)
        return raw_payload(child).hex()
    cls = type(child)
    buf = child.data
    off = child.offset
    try:
        hlen = _HH.unpack_from(buf, off)[0]
    except struct.error:
        return None
    end = off + hlen
    fsize = fields_size(cls)
    if fsize is None:
        try:
            if not child.decoded:
                child.decode()
            return struct_value(child)
        except Exception:
            return raw_payload(child).hex()
    if off + 4 + fsize > end:
        # shorter than its fixed part (older/newer kernel, or cut short)
        return partial_fields(cls, buf, off + 4, end)
    entries, problem = scan_chain(buf, align4(off + 4 + fsize), end)
    inst = child
    ebuf = buf
    if problem is not None:
        # pyroute2 gets a copy that stops before the bad entry
        cut = problem[0] - off
        ebuf = bytearray(buf[off:problem[0]])
        struct.pack_into("=H", ebuf, 0, cut)
        try:
            inst = cls(data=ebuf, offset=0, parent=owner, length=cut,
                       init=child._nla_init)
            inst._nla_flags = child._nla_flags
        except Exception:
            return raw_payload(child).hex()
        entries = [(e[0] - off, e[1], e[2]) for e in entries]
    try:
        if not inst.decoded:
            inst.decode()
        slots = dict.get(inst, "attrs")
        if not isinstance(slots, list):
            slots = None
    except Exception:
        slots = None
    out = fields_of(inst, cls)
    out.update(decode_chain(inst, slots, entries, ebuf, problem, buf, end,
                            depth + 1, ctx, clamped))
    return out


def fields_of(inst, cls):
    """Declared fields, plus what a custom decode() added (e.g. 'addr')."""
    out = {}
    for field in cls.fields:
        fname = field[0]
        if fname.startswith("_") or not dict.__contains__(inst, fname):
            continue
        out[fname] = plain(dict.__getitem__(inst, fname))
    for k, v in dict.items(inst):
        if k not in out and k not in _SKIP_KEYS and isinstance(k, str) \
                and not k.startswith("_") and not isinstance(v, nlmsg_base):
            out[k] = plain(v)
    return out


def convert_array(owner, child, name, depth, ctx, clamped):
    if depth >= MAX_DEPTH:
        ctx.bad("nesting too deep (> %d levels)" % MAX_DEPTH)
        return raw_payload(child).hex()
    cls = type(child)
    buf = child.data
    off = child.offset
    try:
        hlen = _HH.unpack_from(buf, off)[0]
    except struct.error:
        return None
    end = off + hlen
    entries, problem = scan_chain(buf, off + 4, end)
    inst = child
    if problem is not None:
        if problem[2] in ("overrun", "trailing") and clamped:
            ctx.truncated_attrs += 1
        elif problem[2] == "short":
            ctx.bad("array %s: element length %d < 4" % (name, problem[1]))
        elif problem[2] == "overrun":
            ctx.bad("array %s: element overruns the array" % name)
        else:
            ctx.bad("array %s: %d stray bytes" % (name, problem[1]))
        cut = problem[0] - off
        piece = bytearray(buf[off:problem[0]])
        struct.pack_into("=H", piece, 0, cut)
        try:
            inst = cls(data=piece, offset=0, parent=owner, length=cut,
                       init=child._nla_init)
            inst._nla_array = True
            inst._nla_flags = child._nla_flags
        except Exception:
            return raw_payload(child).hex()
    try:
        if not inst.decoded:
            inst.decode()
    except Exception:
        return raw_payload(child).hex()
    cells = inst.value if isinstance(inst.value, list) else []
    out = []
    for cell in cells:
        ctx.nodes += 1
        if ctx.nodes > MAX_NODES:
            ctx.bad("too many attributes")
            break
        out.append(convert_cell(inst, cell, name, depth + 1, ctx, False))
    return out


def convert_cell(owner, cell, name, depth, ctx, clamped):
    """One element of a nested array (already decoded by pyroute2)."""
    cls = type(cell)
    if not cls.nla_map:
        try:
            return leaf_value(cell)
        except Exception:
            return raw_payload(cell).hex()
    if depth >= MAX_DEPTH:
        ctx.bad("nesting too deep (> %d levels)" % MAX_DEPTH)
        return raw_payload(cell).hex()
    buf = cell.data
    off = cell.offset
    hsize = header_size(getattr(cell, "header", None) or ())
    fsize = fields_size(cls)
    try:
        hlen = _HH.unpack_from(buf, off)[0]
    except struct.error:
        return None
    out = fields_of(cell, cls)
    if fsize is None:
        return out
    end = off + hlen
    entries, problem = scan_chain(buf, align4(off + hsize + fsize), end)
    slots = dict.get(cell, "attrs")
    if problem is not None or not isinstance(slots, list):
        slots = None  # decode_chain re-instantiates the clean prefix
    out.update(decode_chain(cell, slots, entries, buf, problem, buf, end,
                            depth + 1, ctx, clamped))
    return out


def decode_top(cls, buf, ctx, clamped):
    """Decode one whole message (nlmsghdr at 0, nlmsg_len == len(buf)).

    Returns (fields, attrs, inst): the fixed header's fields (pyroute2
    values, made plain), the attributes as an AttrDict, and the pyroute2
    instance (None when the fixed header did not fit).
    """
    total = len(buf)
    fsize = fields_size(cls)
    if fsize is not None and 16 + fsize > total:
        return partial_fields(cls, buf, 16, total), AttrDict(), None
    has_map = bool(cls.nla_map)
    entries, problem = [], None
    if has_map and fsize is not None:
        entries, problem = scan_chain(buf, align4(16 + fsize), total)
    work = buf
    if problem is not None:
        work = bytearray(buf[:problem[0]])
        struct.pack_into("=I", work, 0, problem[0])
    inst = cls(work)
    try:
        inst.decode()
        slots = dict.get(inst, "attrs")
        if not isinstance(slots, list):
            slots = None
    except Exception:
        slots = None
        if fsize is not None and not any(
                dict.__contains__(inst, f[0]) for f in cls.fields):
            return partial_fields(cls, buf, 16, total), AttrDict(), None
    fields = fields_of(inst, cls)
    if not has_map:
        return fields, AttrDict(), inst
    if fsize is None:
        attrs = AttrDict()
        for slot in slots or ():
            try:
                nm, ch = slot.cell
                attrs.add(nm, convert(inst, ch, nm, 1, ctx, clamped))
            except Exception:
                continue
        return fields, attrs, inst
    attrs = decode_chain(inst, slots, entries, buf, problem, buf, total, 1,
                         ctx, clamped)
    return fields, attrs, inst


def generic_value(buf, off, depth, ctx, clamped):
    """An attribute nobody has a class for: a nest (NLA_F_NESTED set and a
    clean chain inside) becomes a dict of UNKNOWN_<type> entries, anything
    else hex."""
    try:
        hlen, rtype = _HH.unpack_from(buf, off)
    except struct.error:
        return None
    end = min(off + hlen, len(buf))
    if rtype & NLA_F_NESTED and hlen > 4:
        entries, problem = scan_chain(buf, off + 4, end)
        if problem is None and entries:
            if depth >= MAX_DEPTH:
                ctx.bad("nesting too deep (> %d levels)" % MAX_DEPTH)
            else:
                return generic_chain(buf, off + 4, end, depth + 1, ctx,
                                     clamped)
    return bytes(buf[off + 4:end]).hex()


def generic_chain(buf, start, end, depth, ctx, clamped):
    """Attributes of a payload no pyroute2 class describes."""
    attrs = AttrDict()
    entries, problem = scan_chain(buf, start, end)
    for off, hlen, rtype in entries:
        ctx.nodes += 1
        if ctx.nodes > MAX_NODES:
            ctx.bad("too many attributes")
            return attrs
        attrs.add(unknown_name(rtype),
                  generic_value(buf, off, depth, ctx, False))
    if problem is not None:
        off, hlen, kind = problem
        if clamped and kind in ("overrun", "trailing"):
            ctx.truncated_attrs += 1
            if kind == "overrun":
                attrs.add(unknown_name(_HH.unpack_from(buf, off)[1]),
                          bytes(buf[off + 4:end]).hex())
        elif kind == "short":
            ctx.bad("attribute length %d < 4 at offset %d" % (hlen, off))
        elif kind == "overrun":
            ctx.bad("attribute %s length %d overruns its container "
                    "(%d bytes left)" % (
                        unknown_name(_HH.unpack_from(buf, off)[1]), hlen,
                        end - off))
            attrs.add(unknown_name(_HH.unpack_from(buf, off)[1]),
                      bytes(buf[off + 4:end]).hex())
        else:
            ctx.bad("%d stray bytes after the attributes" % hlen)
    return attrs
