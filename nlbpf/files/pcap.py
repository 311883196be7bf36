"""pcap and pcapng files: read and write the container, nothing netlink-specific.

    reader = Reader(fileobj, name)      # pcapng (any byte order, several sections)
    for pkt in reader: ...              # or classic pcap (us or ns), detected by magic
    reader.truncated                    # None, or why the file ended in mid-block
    reader.sections[-1].comments        # SHB opt_comment strings

    w = PcapngWriter(fileobj, comments=[...], userappl="nlbpf 0.1")
    iface = w.add_interface(253, snaplen, name="nlbpf")
    w.write_packet(iface, ts_ns, data, orig_len, comments=[...], flags=...)
    w.write_stats(iface, ts_ns, ifrecv=..., ifdrop=...)

The reader never trusts a length: every block, option and packet length is
checked against what is really there. A file that stops in the middle of a
block ends the iteration quietly (with `truncated` set); anything else that
does not add up raises PcapError, which names the byte offset. A file too
short to hold its first header is not a capture (PcapError), nor is a packet
record of 0 bytes (a file of zeros behind a header: damaged at that byte).

What the reader keeps does not grow with the file: the first section and the
current one, at most MAX_INTERFACES interfaces per section, the texts of
interfaces and statistics cut to MAX_TEXT characters, statistics only of
interfaces described.
"""
import struct

from ..errors import NlbpfError

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB, PCAPNG_OPB, PCAPNG_SPB, PCAPNG_ISB, PCAPNG_EPB = 1, 2, 3, 5, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D

OPT_ENDOFOPT, OPT_COMMENT = 0, 1
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_TSOFFSET = 2, 3, 9, 14
EPB_FLAGS = 2
ISB_STARTTIME, ISB_ENDTIME, ISB_IFRECV, ISB_IFDROP = 2, 3, 4, 5

# EPB flags: direction (bits 0-1) and reception type (bits 2-4)
FLAG_INBOUND, FLAG_OUTBOUND = 1, 2
FLAG_UNICAST, FLAG_MULTICAST = 1 << 2, 2 << 2

MAX_BLOCK = 16 * 1024 * 1024      # no sane netlink capture has a bigger block
MAX_INTERFACES = 65536            # per section: as many as an OPB can name (16-bit id)
MAX_TEXT = 256                    # characters kept of an interface's name or description,
                                  # and of a statistics block's comment
NS = 1_000_000_000


class PcapError(NlbpfError):
    """The file is not a capture nlbpf can read, or is damaged."""


def _pad4(n):
    return (n + 3) & ~3


class Interface:
    """One pcapng interface (IDB), or the single link of a classic pcap file."""

    def __init__(self, linktype, snaplen, name=None, description=None, units=1_000_000,
                 tsoffset=0, options=()):
        self.linktype = linktype
        self.snaplen = snaplen
        self.name = name
        self.description = description
        self.units = units            # timestamp units per second
        self.tsoffset = tsoffset      # seconds added to every timestamp
        self.options = list(options)  # (code, raw value) as found

    def to_ns(self, ticks):
        if self.units == NS:
            ns = ticks
        elif NS % self.units == 0:
            ns = ticks * (NS // self.units)
        else:
            ns = ticks * NS // self.units
        return ns + self.tsoffset * NS

    def __repr__(self):
        return f"Interface(linktype={self.linktype}, snaplen={self.snaplen}, name={self.name!r})"


class Section:
    def __init__(self, comments=(), hardware=None, os=None, userappl=None, options=()):
        self.comments = list(comments)
        self.hardware = hardware
        self.os = os
        self.userappl = userappl
        self.options = list(options)
        self.interfaces = []


class Packet:
    __slots__ = ("iface", "ts_ns", "data", "orig_len", "comments", "flags", "offset")

    def __init__(self, iface, ts_ns, data, orig_len, comments=(), flags=None, offset=0):
        self.iface = iface
        self.ts_ns = ts_ns
        self.data = data
        self.orig_len = orig_len
        self.comments = list(comments)
        self.flags = flags
        self.offset = offset


class Stats:
    """What interface statistics blocks said (the last one per interface wins)."""

    def __init__(self, iface, ts_ns=None, ifrecv=None, ifdrop=None, comments=()):
        self.iface = iface
        self.ts_ns = ts_ns
        self.ifrecv = ifrecv
        self.ifdrop = ifdrop
        self.comments = list(comments)


def _text(raw):
    """An option's string: bad UTF-8 replaced (U+FFFD), never an error."""
    return raw.rstrip(b"\0").decode("utf-8", "replace")


def _short_text(raw):
    return _text(raw[:MAX_TEXT * 4])[:MAX_TEXT]


class Reader:
    """Packets of a pcap or pcapng file, read as a stream (stdin works)."""

    def __init__(self, fileobj, name="capture"):
        self.f = fileobj
        self.name = name
        self.pos = 0
        self.sections = []
        self.stats = {}               # interface index -> Stats (current section)
        self.truncated = None         # text, when the file ends in mid-block
        self.packets = 0
        head = self._read(4)
        if len(head) < 4:
            raise PcapError(f"{name} is empty" if not head else f"{name} is too short to be a capture")
        self._head = head
        magic_le = struct.unpack("<I", head)[0]
        if magic_le == PCAPNG_SHB:
            self.format = "pcapng"
        elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or \
                struct.unpack(">I", head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            self.format = "pcap"
            self._pcap_header()
        elif head[:2] == b"\x1f\x8b":
            raise PcapError(f"{name} is gzip-compressed; gunzip it first")
        else:
            raise PcapError(f"{name} is not a pcap or pcapng file (it starts with {head.hex()})")
        if self.format == "pcapng":
            # read the first section header now, so callers see its comments
            self._first = self._pcapng_block(first=True)

    # -------------------------------------------------------------- helpers
    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.f.read(n - len(out))
            if not chunk:
                break
            out += chunk
        self.pos += len(out)
        return out

    def _corrupt(self, offset, why):
        return PcapError(f"{self.name} is damaged at byte {offset}: {why} "
                         f"({self.packets} packets read before it)")

    def _cut(self, offset, what):
        self.truncated = (f"{self.name} is cut short at byte {offset}, in the middle of {what} "
                          f"({self.packets} packets read before it)")

    def _new_section(self, section):
        # the first section (its comments describe the file) and the current one
        if len(self.sections) >= 2:
            self.sections[1].interfaces = []
            self.sections[1:] = [section]
        else:
            self.sections.append(section)
        self.stats = {}

    @property
    def section(self):
        return self.sections[-1] if self.sections else None

    @property
    def interfaces(self):
        return self.section.interfaces if self.section else []

    # --------------------------------------------------------- classic pcap
    def _pcap_header(self):
        rest = self._read(20)
        if len(rest) < 20:
            self._cut(self.pos, "the file header")
            raise PcapError(f"{self.name} is too short to be a capture (no complete pcap header)")
        head = self._head
        if struct.unpack("<I", head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            self.endian = "<"
        else:
            self.endian = ">"
        magic = struct.unpack(self.endian + "I", head)[0]
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(self.endian + "HHiIII", rest)
        if major != 2:
            raise self._corrupt(4, f"pcap version {major}.{minor} is not 2.x")
        units = NS if magic == PCAP_MAGIC_NS else 1_000_000
        section = Section()
        section.interfaces.append(Interface(network & 0xFFFF, snaplen, units=units))
        self.sections.append(section)

    def _pcap_packets(self):
        rec = struct.Struct(self.endian + "IIII")
        iface = self.interfaces[0]
        while True:
            start = self.pos
            head = self._read(16)
            if not head:
                return
            if len(head) < 16:
                self._cut(start, "a packet header")
                return
            sec, frac, incl, orig = rec.unpack(head)
            if incl > MAX_BLOCK:
                raise self._corrupt(start, f"a packet claims {incl} bytes")
            if not incl and not orig:
                raise self._corrupt(start, "a packet record of 0 bytes")
            data = self._read(incl)
            if len(data) < incl:
                self._cut(start, "a packet")
                return
            ts = sec * NS + frac * (NS // iface.units)
            self.packets += 1
            yield Packet(iface, ts, data, max(orig, incl), offset=start)

    # --------------------------------------------------------------- pcapng
    def _options(self, raw, endian):
        """[(code, value bytes)] until opt_endofopt; a bad length ends the list."""
        out = []
        off = 0
        while off + 4 <= len(raw):
            code, length = struct.unpack_from(endian + "HH", raw, off)
            if code == OPT_ENDOFOPT:
                break
            if off + 4 + length > len(raw):
                break
            out.append((code, raw[off + 4:off + 4 + length]))
            off += 4 + _pad4(length)
        return out

    def _pcapng_block(self, first=False):
        """Reads one block; returns a Packet, or None for other blocks, or False at the end."""
        start = self.pos
        if first:
            head = self._head + self._read(4)
        else:
            head = self._read(8)
            if not head:
                return False
        if len(head) < 8:
            if first:
                raise PcapError(f"{self.name} is too short to be a capture "
                                f"(no complete pcapng header)")
            self._cut(start, "a block header")
            return False
        btype_raw = head[:4]
        if struct.unpack("<I", btype_raw)[0] == PCAPNG_SHB:
            bom = self._read(4)
            if len(bom) < 4:
                self._cut(start, "a section header")
                if first:
                    raise PcapError(f"{self.name} is too short to be a capture (no complete pcapng header)")
                return False
            if struct.unpack("<I", bom)[0] == BYTE_ORDER_MAGIC:
                self.endian = "<"
            elif struct.unpack(">I", bom)[0] == BYTE_ORDER_MAGIC:
                self.endian = ">"
            else:
                raise self._corrupt(start + 8, "bad byte-order magic in a section header")
            total = struct.unpack(self.endian + "I", head[4:8])[0]
            if total < 28 or total % 4 or total > MAX_BLOCK:
                raise self._corrupt(start, f"a section header claims {total} bytes")
            body = bom + self._read(total - 12)
            if len(body) < total - 8:
                self._cut(start, "a section header")
                if first:
                    raise PcapError(f"{self.name} is too short to be a capture (no complete pcapng header)")
                return False
            body, trailer = body[:-4], body[-4:]
        else:
            if not self.sections:
                raise self._corrupt(start, "no section header before the first block")
            btype, total = struct.unpack(self.endian + "II", head)
            if total < 12 or total % 4 or total > MAX_BLOCK:
                raise self._corrupt(start, f"a block of type {btype:#x} claims {total} bytes")
            body = self._read(total - 8)
            if len(body) < total - 8:
                self._cut(start, "a block")
                return False
            body, trailer = body[:-4], body[-4:]
        if struct.unpack(self.endian + "I", trailer)[0] != total:
            raise self._corrupt(start, "a block's two length fields differ")
        e = self.endian
        btype = struct.unpack(e + "I", head[:4])[0]
        if btype == PCAPNG_SHB:
            major, minor = struct.unpack_from(e + "HH", body, 4)
            if major != 1:
                raise self._corrupt(start, f"pcapng version {major}.{minor} is not 1.x")
            opts = self._options(body[16:], e)
            section = Section(comments=[_text(v) for c, v in opts if c == OPT_COMMENT],
                              hardware=next((_text(v) for c, v in opts if c == SHB_HARDWARE), None),
                              os=next((_text(v) for c, v in opts if c == SHB_OS), None),
                              userappl=next((_text(v) for c, v in opts if c == SHB_USERAPPL), None),
                              options=opts)
            self._new_section(section)
            return None
        if btype == PCAPNG_IDB:
            if len(body) < 8:
                raise self._corrupt(start, "an interface block is too short")
            linktype, _res, snaplen = struct.unpack_from(e + "HHI", body)
            opts = self._options(body[8:], e)
            units, tsoffset = 1_000_000, 0
            for code, value in opts:
                if code == IF_TSRESOL and len(value) >= 1:
                    r = value[0]
                    units = (2 ** (r & 0x7F)) if r & 0x80 else 10 ** min(r, 18)
                    if units == 0 or units > 2 ** 63:
                        units = 1_000_000
                elif code == IF_TSOFFSET and len(value) >= 8:
                    tsoffset = struct.unpack(e + "q", value[:8])[0]
            if len(self.section.interfaces) >= MAX_INTERFACES:
                raise self._corrupt(start, f"more than {MAX_INTERFACES} interfaces in one section")
            # the raw options are not kept: a file of big interface blocks would fill memory
            self.section.interfaces.append(Interface(
                linktype, snaplen,
                name=next((_short_text(v) for c, v in opts if c == IF_NAME), None),
                description=next((_short_text(v) for c, v in opts if c == IF_DESCRIPTION), None),
                units=units, tsoffset=tsoffset))
            return None
        if btype in (PCAPNG_EPB, PCAPNG_OPB):
            if btype == PCAPNG_EPB:
                if len(body) < 20:
                    raise self._corrupt(start, "a packet block is too short")
                ifid, hi, lo, caplen, orig = struct.unpack_from(e + "IIIII", body)
            else:
                if len(body) < 20:
                    raise self._corrupt(start, "a packet block is too short")
                ifid, _drops, hi, lo, caplen, orig = struct.unpack_from(e + "HHIIII", body)
            if 20 + caplen > len(body):
                raise self._corrupt(start, f"a packet claims {caplen} bytes in a {total}-byte block")
            if not caplen and not orig:
                raise self._corrupt(start, "a packet record of 0 bytes")
            if ifid >= len(self.interfaces):
                raise self._corrupt(start, f"a packet on interface {ifid}, which the file never described")
            iface = self.interfaces[ifid]
            data = body[20:20 + caplen]
            opts = self._options(body[20 + _pad4(caplen):], e)
            flags = next((struct.unpack(e + "I", v[:4])[0] for c, v in opts
                          if c == EPB_FLAGS and len(v) >= 4), None)
            self.packets += 1
            return Packet(iface, iface.to_ns((hi << 32) | lo), data, max(orig, caplen),
                          comments=[_text(v) for c, v in opts if c == OPT_COMMENT],
                          flags=flags, offset=start)
        if btype == PCAPNG_SPB:
            if len(body) < 4:
                raise self._corrupt(start, "a simple packet block is too short")
            if not self.interfaces:
                raise self._corrupt(start, "a packet before any interface block")
            iface = self.interfaces[0]
            orig = struct.unpack_from(e + "I", body)[0]
            if not orig:
                raise self._corrupt(start, "a packet record of 0 bytes")
            caplen = min(orig, len(body) - 4, iface.snaplen or orig)
            self.packets += 1
            return Packet(iface, 0, body[4:4 + caplen], orig, offset=start)
        if btype == PCAPNG_ISB:
            if len(body) >= 12:
                ifid, hi, lo = struct.unpack_from(e + "III", body)
                if ifid >= len(self.interfaces):
                    return None     # statistics of an interface never described: of nothing
                opts = self._options(body[12:], e)
                get = {c: v for c, v in opts}
                st = Stats(ifid, comments=[_short_text(v) for c, v in opts if c == OPT_COMMENT])
                st.ts_ns = self.interfaces[ifid].to_ns((hi << 32) | lo)
                if len(get.get(ISB_IFRECV, b"")) >= 8:
                    st.ifrecv = struct.unpack(e + "Q", get[ISB_IFRECV][:8])[0]
                if len(get.get(ISB_IFDROP, b"")) >= 8:
                    st.ifdrop = struct.unpack(e + "Q", get[ISB_IFDROP][:8])[0]
                self.stats[ifid] = st
            return None
        return None     # name resolution, custom, decryption secrets...: not ours

    def _pcapng_packets(self):
        while True:
            item = self._pcapng_block()
            if item is False:
                return
            if item is not None:
                yield item

    def __iter__(self):
        if self.format == "pcap":
            return self._pcap_packets()
        return self._pcapng_packets()


# ------------------------------------------------------------------- writers
_ZEROS = (b"", b"\0", b"\0\0", b"\0\0\0")       # by -len & 3: padding to 4 bytes


def _option(code, value, endian="<"):
    return struct.pack(endian + "HH", code, len(value)) + value + _ZEROS[-len(value) & 3]


def _options(items):
    """items: (code, bytes) pairs -> the option area (with opt_endofopt), or b""."""
    items = [(c, v) for c, v in items if v is not None]
    if not items:
        return b""
    return b"".join(_option(c, v) for c, v in items) + _option(OPT_ENDOFOPT, b"")


_EPB_HEAD = struct.Struct("<IIIIIII")     # block type, total length, EPB fields
_TOTAL = struct.Struct("<I")
_OPT_HEAD = struct.Struct("<HH")
_END_OF_OPTIONS = _option(OPT_ENDOFOPT, b"")
_FLAGS_OPTIONS = {}


def _flags_option(flags):
    opt = _FLAGS_OPTIONS.get(flags)
    if opt is None:
        opt = _option(EPB_FLAGS, struct.pack("<I", flags))
        if len(_FLAGS_OPTIONS) < 64:
            _FLAGS_OPTIONS[flags] = opt
    return opt


def _block(btype, body):
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def _utf8(text):
    return text.encode("utf-8", "replace") if text is not None else None


class PcapngWriter:
    """Little-endian pcapng, one section; nanosecond timestamps by default."""

    def __init__(self, f, comments=(), hardware=None, os=None, userappl=None):
        self.f = f
        opts = [(OPT_COMMENT, _utf8(c)) for c in comments]
        opts += [(SHB_HARDWARE, _utf8(hardware)), (SHB_OS, _utf8(os)),
                 (SHB_USERAPPL, _utf8(userappl))]
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts)
        self.f.write(_block(PCAPNG_SHB, body))
        self.interfaces = []

    def add_interface(self, linktype, snaplen, name=None, description=None, tsresol=9):
        opts = [(IF_NAME, _utf8(name)), (IF_DESCRIPTION, _utf8(description)),
                (IF_TSRESOL, bytes([tsresol]) if tsresol != 6 else None)]
        body = struct.pack("<HHI", linktype, 0, snaplen) + _options(opts)
        self.f.write(_block(PCAPNG_IDB, body))
        self.interfaces.append(10 ** tsresol)
        return len(self.interfaces) - 1

    def _ticks(self, iface, ts_ns):
        units = self.interfaces[iface]
        ticks = ts_ns * units // NS if units != NS else ts_ns
        return max(0, ticks) & 0xFFFFFFFFFFFFFFFF

    def write_packet(self, iface, ts_ns, data, orig_len=None, comments=(), flags=None):
        # the hot path of `nlbpf record`: one join and one write per packet, the
        # same bytes _block(_options(...)) would give
        ticks = self._ticks(iface, ts_ns)
        n = len(data)
        orig = n if orig_len is None or orig_len < n else orig_len
        parts = [None, data, _ZEROS[-n & 3]]
        for c in comments:
            if c is None:
                continue
            parts.append(_option(OPT_COMMENT, c.encode("utf-8", "replace")))
        if flags is not None:
            parts.append(_flags_option(flags))
        if len(parts) > 3:
            parts.append(_END_OF_OPTIONS)
        total = 12 + 20 + sum(map(len, parts[1:]))
        parts[0] = _EPB_HEAD.pack(PCAPNG_EPB, total, iface, ticks >> 32, ticks & 0xFFFFFFFF, n,
                                  orig)
        parts.append(_TOTAL.pack(total))
        self.f.write(b"".join(parts))

    def write_commented(self, iface, ts_ns, head, data, orig_len, comment, flags):
        """write_packet(iface, ts_ns, head + data, orig_len, [comment], flags), for the
        case `nlbpf record` writes for every message: without building its lists."""
        units = self.interfaces[iface]
        if units != NS:
            ts_ns = ts_ns * units // NS
        ticks = ts_ns & 0xFFFFFFFFFFFFFFFF if ts_ns > 0 else 0
        n = len(head) + len(data)
        text = comment.encode("utf-8", "replace")
        lt = len(text)
        flags_opt = _flags_option(flags) if flags is not None else b""
        total = 12 + 20 + n + (-n & 3) + 4 + lt + (-lt & 3) + len(flags_opt) + 4
        self.f.write(b"".join((
            _EPB_HEAD.pack(PCAPNG_EPB, total, iface, ticks >> 32, ticks & 0xFFFFFFFF, n,
                           orig_len if orig_len > n else n),
            head, data, _ZEROS[-n & 3],
            _OPT_HEAD.pack(OPT_COMMENT, lt), text, _ZEROS[-lt & 3],
            flags_opt, _END_OF_OPTIONS, _TOTAL.pack(total))))

    def write_stats(self, iface, ts_ns, ifrecv=None, ifdrop=None, starttime_ns=None,
                    endtime_ns=None, comments=()):
        ticks = self._ticks(iface, ts_ns)

        def ts_opt(ns):
            if ns is None:
                return None
            t = self._ticks(iface, ns)
            return struct.pack("<II", t >> 32, t & 0xFFFFFFFF)
        opts = [(OPT_COMMENT, _utf8(c)) for c in comments]
        opts += [(ISB_STARTTIME, ts_opt(starttime_ns)), (ISB_ENDTIME, ts_opt(endtime_ns)),
                 (ISB_IFRECV, struct.pack("<Q", ifrecv) if ifrecv is not None else None),
                 (ISB_IFDROP, struct.pack("<Q", ifdrop) if ifdrop is not None else None)]
        body = struct.pack("<III", iface, ticks >> 32, ticks & 0xFFFFFFFF) + _options(opts)
        self.f.write(_block(PCAPNG_ISB, body))


class PcapWriter:
    """Classic little-endian pcap with nanosecond timestamps (magic a1b23c4d)."""

    def __init__(self, f, linktype, snaplen, nanosecond=True):
        self.f = f
        self.units = NS if nanosecond else 1_000_000
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        self.f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write_packet(self, ts_ns, data, orig_len=None):
        ts_ns = max(0, ts_ns)
        sec, frac = divmod(ts_ns, NS)
        frac = frac * self.units // NS
        orig = max(len(data), orig_len if orig_len is not None else len(data))
        self.f.write(struct.pack("<IIII", sec & 0xFFFFFFFF, frac, len(data), orig) + data)
