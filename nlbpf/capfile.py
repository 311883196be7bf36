"""nlbpf's capture files: netlink records <-> LINKTYPE_NETLINK packets.

Framing (what nlmon gives tcpdump, and what Wireshark's netlink dissector
reads): link type LINKTYPE_NETLINK (253); every packet starts with a 16-byte
Linux "cooked" header -- packet type 4 (outgoing, as nlmon's), ARPHRD_NETLINK
(824), address length 0, 8 zero address bytes, the netlink protocol -- all
big endian, then the netlink message in host byte order.

nlbpf writes one message per packet, timestamped when the message crossed
(model.Message.ts_ns: a request when its send call began, a reply when its
receive call returned). Who sent or received it goes in the
packet's comment (pcapng opt_comment: Wireshark shows it under "Packet
comments", and filters on it as frame.comment):

    pid=4242 comm=ip tid=4242 dir=request netns=4026532288 cgroup=1 portid=4242
    sock=0xffff8880047a1000 syscall=sendmsg ret=52 dur_ns=4100

then every other field of model.Message that is not at its default
(lock_wait_ns, holder_pid, holder_comm, skipped_parts, skipped_bytes,
skipped_intr, split, groups, ...), and len= when nlmsg_len differs from the
packet's original length. Strings that are not plain words are JSON-quoted.
The direction is also in the EPB flags (outbound for requests, inbound
unicast/multicast for replies/notifications), which Wireshark shows as
frame.packet_flags_direction.

What has no netlink bytes is a packet holding one NLMSG_NOOP ("nothing")
whose comment says what it is: `event=syscall_error ...` (a failed socket
call: ENOBUFS overruns...), `event=extack ...` (the kernel's error text) and
`event=context netns=... cgroup=... where={...}` (netns name, cgroup path and
container, once per netns and cgroup, so that read shows what live showed).

The section header carries two comments: a sentence for people, and
`nlbpf-meta {json}` with what `read` needs to reproduce the live records:
the monotonic->wall clock offset, the snap length, the filters, and the
generic netlink families the recorder knew. The closing interface statistics
block holds the events the kernel handed over (isb_ifrecv) and lost
(isb_ifdrop).

Classic pcap has no comments: there the cooked header's packet type carries
the direction (4 request, 0 reply, 2 notification) and its 8 address bytes
(address length 8) the pid and tid; comm, netns, timing and the events are
lost.

Files made by others (nlmon + tcpdump) have no process at all, and one packet
per skb (several messages): their messages get the socket's netlink port id
as pid (the kernel names a process's first socket after its pid) and comm
'?'; requests, which carry port id 0, get it from their reply.
"""
import dataclasses
import functools
import json
import os
import platform
import re
import struct
import sys
from operator import attrgetter

from . import __version__
from .capture.records import Extack
from .model import Message, SyscallError, REQUEST, REPLY, NOTIFY
from .pcapfile import (FLAG_INBOUND, FLAG_MULTICAST, FLAG_OUTBOUND, FLAG_UNICAST, PcapError,
                       PcapngWriter, PcapWriter, Reader)
from .errors import NlbpfError

LINKTYPE_NETLINK = 253
ARPHRD_NETLINK = 824
PACKET_HOST, PACKET_MULTICAST, PACKET_OUTGOING = 0, 2, 4
COOKED = struct.Struct(">HHH8sH")
META_PREFIX = "nlbpf-meta "
FORMAT_VERSION = 1
UNKNOWN_COMM = "?"

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 1, 2, 4, 8
NLMSG_ERROR, NLMSG_DONE = 2, 3

PKTTYPE_OF = {REQUEST: PACKET_OUTGOING, REPLY: PACKET_HOST, NOTIFY: PACKET_MULTICAST}
DIR_OF_PKTTYPE = {v: k for k, v in PKTTYPE_OF.items()}
FLAGS_OF = {REQUEST: FLAG_OUTBOUND, REPLY: FLAG_INBOUND | FLAG_UNICAST,
            NOTIFY: FLAG_INBOUND | FLAG_MULTICAST}


# Failed calls, extack texts and context facts are packets too (so Wireshark
# shows their comments in place): an NLMSG_NOOP, which means "nothing".
NOOP = struct.pack("=IHHII", 16, 1, 0, 0, 0)


@functools.lru_cache(maxsize=1024)      # a few distinct headers, one per message
def cooked(protocol, pkttype=PACKET_OUTGOING, addr=b""):
    return COOKED.pack(pkttype, ARPHRD_NETLINK, len(addr), addr.ljust(8, b"\0")[:8],
                       protocol & 0xFFFF)


# ------------------------------------------------------------ comment codec
_PLAIN = re.compile(r'[^\s"\\=]+')
_TOKEN = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def _value(v):
    t = type(v)
    if t is int:
        return str(v)
    if t is bool:
        return "1" if v else "0"
    if isinstance(v, int):
        return str(int(v))
    v = str(v)
    return v if _PLAIN.fullmatch(v) else json.dumps(v)


def encode_comment(pairs):
    return " ".join(f"{k}={_value(v)}" for k, v in pairs)


def decode_comment(text):
    """'a=1 b="x y"' -> {'a': '1', 'b': 'x y'}; unparsable values are dropped."""
    out = {}
    for key, raw in _TOKEN.findall(text or ""):
        if raw.startswith('"'):
            try:
                raw = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(raw, str):
                continue
        out[key] = raw
    return out


def _int(d, key, default=0):
    v = d.get(key)
    if v is None:
        return default
    try:
        return int(v, 0)
    except (TypeError, ValueError):
        return default


# The records' own fields go in the comment (those in the packet do not). The
# codec follows the dataclasses, so fields added to them later travel too.
IN_PACKET = {"ts_ns", "protocol", "data", "length"}
CORE = ("pid", "comm", "tid", "direction", "netns", "cgroup", "portid", "sock", "syscall",
        "ret", "dur_ns")
ALIASES = {"direction": "dir", "lock_holder_pid": "holder_pid",
           "lock_holder_comm": "holder_comm"}


def _kind(f):
    t = f.type if isinstance(f.type, str) else str(f.type)
    for kind in ("bool", "int", "str"):
        if kind in t:
            return kind
    return "str"


def _fields(cls, skip=IN_PACKET):
    return [f for f in dataclasses.fields(cls) if f.name not in skip]


def _zero(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return {"bool": False, "int": 0, "str": ""}[_kind(f)]


_PLANS = {}


def _plan(cls, core, skip):
    """(attribute, comment key, always written, default) per field, core fields first."""
    key = (cls, core, frozenset(skip))
    plan = _PLANS.get(key)
    if plan is None:
        fields = {f.name: f for f in _fields(cls, skip)}
        order = [n for n in core if n in fields] + [n for n in fields if n not in core]
        plan = _PLANS[key] = [(n, ALIASES.get(n, n), n in core, _zero(fields[n])) for n in order]
    return plan


def _shown(name, v):
    """A field's value as the comment holds it: the socket in hex."""
    return hex(v) if name == "sock" and type(v) is int else v


def record_pairs(rec, core=CORE, skip=IN_PACKET):
    pairs = []
    for name, key, always, zero in _plan(type(rec), core, skip):
        v = getattr(rec, name)
        if v is None or (not always and v == zero):
            continue
        pairs.append((key, _shown(name, v)))
    return pairs


_KW_PLANS = {}


def record_kwargs(cls, meta, skip=IN_PACKET):
    key = (cls, frozenset(skip))
    plan = _KW_PLANS.get(key)
    if plan is None:
        # per class, once: _kind() reads the annotation text (nlbpf read of a big file
        # spent a third of its time here)
        plan = _KW_PLANS[key] = [(f.name, ALIASES.get(f.name, f.name), _kind(f), _zero(f))
                                 for f in _fields(cls, skip)]
    kw = {}
    for name, comment_key, kind, zero in plan:
        raw = meta.get(comment_key)
        if raw is None:
            kw[name] = zero
        elif kind == "bool":
            kw[name] = raw in ("1", "true", "True")
        elif kind == "int":
            try:
                kw[name] = int(raw, 0)
            except ValueError:
                kw[name] = zero
        else:
            kw[name] = raw
    return kw


def _generic_message_comment(msg, orig_len):
    pairs = record_pairs(msg)
    if msg.length != orig_len - 16:
        pairs.append(("len", msg.length))
    return encode_comment(pairs)


class _MessageComments:
    """message_comment() at recording rates: the same text as the generic codec.

    Who/where (pid ... syscall) repeats from message to message, so its text is
    kept per value; ret and dur_ns change every time and are plain ints; the
    other fields are nearly always at their defaults (then they add nothing).
    Anything unusual (None, a non-int, a non-default field) takes the generic
    path, which stays the definition."""

    CACHE_MAX = 4096

    def __init__(self):
        plan = _plan(Message, CORE, IN_PACKET)
        core = [n for n, _key, always, _zero in plan if always]
        assert core[-2:] == ["ret", "dur_ns"], core     # the fast text's order
        self.stable = core[:-2]
        self.get_stable = attrgetter(*self.stable)
        self.sock_at = self.stable.index("sock")
        rest = [(n, zero) for n, _key, always, zero in plan if not always]
        self.get_rest = attrgetter(*(n for n, _ in rest))
        self.rest_zero = tuple(zero for _, zero in rest)
        self.prefixes = {}

    def _prefix(self, values):
        return encode_comment([(ALIASES.get(name, name), _shown(name, v))
                               for name, v in zip(self.stable, values)])

    def __call__(self, msg, orig_len):
        if type(msg) is not Message:
            return _generic_message_comment(msg, orig_len)
        values = self.get_stable(msg)
        ret, dur = msg.ret, msg.dur_ns
        if type(ret) is not int or type(dur) is not int or self.get_rest(msg) != self.rest_zero:
            return _generic_message_comment(msg, orig_len)
        prefix = self.prefixes.get(values)
        if prefix is None:
            # checked only here: a key with None is never stored, so none matches
            if None in values or type(values[self.sock_at]) is not int:
                return _generic_message_comment(msg, orig_len)
            if len(self.prefixes) >= self.CACHE_MAX:
                self.prefixes.clear()
            prefix = self.prefixes[values] = self._prefix(values)
        text = f"{prefix} ret={ret} dur_ns={dur}"
        if msg.length != orig_len - 16:
            text += f" len={_value(msg.length)}"
        return text


message_comment = _MessageComments()


def message_from_comment(meta, ts_ns, protocol, data, orig_len):
    kw = record_kwargs(Message, meta)
    if kw["direction"] not in (REQUEST, REPLY, NOTIFY):
        return None
    length = _int(meta, "len", orig_len - 16)
    return Message(ts_ns=ts_ns, protocol=protocol, data=data, length=length, **kw)


EVENTS = {"syscall_error": SyscallError, "extack": Extack}
EVENT_NAMES = {cls: name for name, cls in EVENTS.items()}


def event_comment(rec):
    skip = {"ts_ns", "protocol"}
    return encode_comment([("event", EVENT_NAMES[type(rec)])] + record_pairs(rec, skip=skip))


def event_from_comment(meta, ts_ns, protocol):
    cls = EVENTS.get(meta.get("event"))
    if cls is None:
        return None
    skip = {"ts_ns", "protocol"}
    kw = record_kwargs(cls, meta, skip=skip)
    if "protocol" in {f.name for f in dataclasses.fields(cls)}:
        kw["protocol"] = protocol
    return cls(ts_ns=ts_ns, **kw)


def context_comment(netns, cgroup, pid, where):
    return encode_comment([("event", "context"), ("netns", netns), ("cgroup", cgroup),
                           ("pid", pid), ("where", json.dumps(where, sort_keys=True))])


class FileContext:
    """Where records came from, as the recorder's machine said (context events).

    Stands in for nlbpf.context's live Context while a file is read: describe()
    answers from the file, never from this machine."""

    UNKNOWN = {"netns_name": None, "cgroup_path": None, "container": None}

    def __init__(self):
        self.known = {}
        self.keys = None

    def add(self, meta):
        try:
            where = json.loads(meta.get("where", ""))
        except ValueError:
            return
        if isinstance(where, dict):
            self.known[(_int(meta, "netns"), _int(meta, "cgroup"))] = where
            self.keys = list(where)

    def describe(self, netns, cgroup, pid=None):
        where = self.known.get((netns, cgroup))
        if where is None:
            return {k: None for k in self.keys} if self.keys else dict(self.UNKNOWN)
        return json.loads(json.dumps(where))

    def tag(self, info, netns=None):
        try:
            from .context import Context
            return Context.tag(self, info, netns)
        except Exception:
            return ""


# ----------------------------------------------------------------- metadata
def families_to_json(families):
    if families is None:
        return []
    out = []
    groups = getattr(families, "_groups", {})
    for fid, name in families.items():
        out.append([fid, name, families.version(name),
                    sorted([gid, g] for gid, (fam, g) in groups.items() if fam == name)])
    return out


def families_from_json(items):
    from .decode import GenlFamilies
    fams = GenlFamilies()
    for item in items or ():
        try:
            fid, name, version, groups = item
            fams.add(fid, name, version if isinstance(version, int) else None,
                     [tuple(g) for g in groups or () if isinstance(g, list) and len(g) == 2])
        except (TypeError, ValueError):
            continue
    return fams


# ------------------------------------------------------------------ writing
class CaptureWriter:
    """Writes nlbpf records to a pcapng (default) or classic pcap file object."""

    def __init__(self, f, fmt="pcapng", snaplen=1024, offset_ns=0, families=None, filters="",
                 describe=None, secrets=None):
        """describe(netns, cgroup, pid) -> dict: where a record came from (netns name,
        cgroup path, container...), written once per (netns, cgroup) as a context event."""
        self.f = f
        self.fmt = fmt
        self.offset_ns = offset_ns
        self.describe = describe
        self.counts = {"messages": 0, "syscall_errors": 0, "extacks": 0, "not_kept": 0,
                       "contexts": 0}
        self.first_ts = self.last_ts = None
        self._sock_proto = {}
        self._described = set()
        if fmt == "pcapng":
            meta = {"v": FORMAT_VERSION, "nlbpf": __version__, "offset_ns": offset_ns,
                    "snaplen": snaplen, "filters": filters,
                    "genl_families": families_to_json(families)}
            if secrets is not None:
                meta["secrets"] = secrets       # "redacted": key bytes are zeros here
            human = (f"Recorded by nlbpf {__version__} on {platform.node()}: netlink messages as "
                     "processes sent and received them. Each packet's comment names the "
                     "process (pid, comm, tid), its network namespace and the direction; "
                     "`nlbpf read FILE` replays them.")
            self.w = PcapngWriter(f, comments=[human, META_PREFIX + json.dumps(meta)],
                                  os=f"Linux {platform.release()}",
                                  userappl=f"nlbpf {__version__}")
            self.w.add_interface(LINKTYPE_NETLINK, snaplen + 16, name="nlbpf",
                                 description="netlink at the socket-call layer (eBPF); "
                                             "process in each packet comment")
        elif fmt == "pcap":
            self.w = PcapWriter(f, LINKTYPE_NETLINK, snaplen + 16)
        else:
            raise ValueError(fmt)

    def _ts(self, ts_ns):
        wall = ts_ns + self.offset_ns
        if self.first_ts is None:
            self.first_ts = wall
        self.last_ts = wall
        return wall

    def _context(self, rec):
        key = (rec.netns, rec.cgroup)
        if self.describe is None or self.fmt != "pcapng" or key in self._described:
            return
        self._described.add(key)
        try:
            where = self.describe(rec.netns, rec.cgroup, rec.pid)
        except Exception:
            return
        if not isinstance(where, dict):
            return
        comment = context_comment(rec.netns, rec.cgroup, rec.pid, where)
        self.w.write_packet(0, self._ts(rec.ts_ns), cooked(getattr(rec, "protocol", 0)) + NOOP,
                            comments=[comment])
        self.counts["contexts"] += 1

    def _message_pcapng(self, rec):
        """write() of a Message to pcapng: `record`'s hot path, reached with one
        type check; what repeats is looked up rather than made again, and the
        timestamp kept inline (_ts's work, without its call)."""
        if (rec.netns, rec.cgroup) not in self._described:
            self._context(rec)
        proto = rec.protocol
        self._sock_proto[rec.sock] = proto
        data = rec.data
        n = len(data)
        orig = 16 + (rec.length if rec.length > n else n)
        wall = rec.ts_ns + self.offset_ns
        if self.first_ts is None:
            self.first_ts = wall
        self.last_ts = wall
        self.w.write_commented(0, wall, cooked(proto), data, orig, message_comment(rec, orig),
                               FLAGS_OF.get(rec.direction))
        self.counts["messages"] += 1
        return True

    def write(self, rec):
        if isinstance(rec, Message):
            if self.fmt == "pcapng":
                return self._message_pcapng(rec)
            self._sock_proto[rec.sock] = rec.protocol
            orig = 16 + max(rec.length, len(rec.data))
            addr = struct.pack(">II", rec.pid & 0xFFFFFFFF, rec.tid & 0xFFFFFFFF)
            data = cooked(rec.protocol, PKTTYPE_OF.get(rec.direction, PACKET_OUTGOING),
                          addr) + rec.data
            self.w.write_packet(self._ts(rec.ts_ns), data, orig)
            self.counts["messages"] += 1
            return True
        if isinstance(rec, SyscallError):
            self._context(rec)
        if isinstance(rec, (SyscallError, Extack)):
            if self.fmt != "pcapng":
                self.counts["not_kept"] += 1
                return False
            if isinstance(rec, SyscallError):
                proto = rec.protocol
                self.counts["syscall_errors"] += 1
            else:
                proto = self._sock_proto.get(rec.sock, 0)
                self.counts["extacks"] += 1
            comment = event_comment(rec)
            self.w.write_packet(0, self._ts(rec.ts_ns), cooked(proto) + NOOP, comments=[comment])
            return True
        return False

    @property
    def packets(self):
        return (self.counts["messages"] + self.counts["syscall_errors"] + self.counts["extacks"]
                + self.counts["contexts"])

    def close(self, stats=None, now_ns=None):
        """Writes the closing statistics block (pcapng) and flushes."""
        if self.fmt == "pcapng" and stats is not None:
            import time
            now = now_ns if now_ns is not None else time.time_ns()
            extra = [f"{k}={stats[k]}" for k in ("walk_truncated", "pending_full") if stats.get(k)]
            self.w.write_stats(0, now, ifrecv=stats.get("emitted"), ifdrop=stats.get("lost"),
                               starttime_ns=self.first_ts, endtime_ns=self.last_ts,
                               comments=[" ".join(extra)] if extra else ())
        self.f.flush()


# ------------------------------------------------------------------ reading
class CaptureFile:
    """Records of one capture file, in file order.

        cap = CaptureFile.open(path)      # "-" reads stdin
        cap.offset_ns, cap.families       # clock offset and genl families (nlbpf files)
        for rec in cap.records(): ...     # Message, SyscallError, Extack
        cap.notes                         # warnings for stderr, once each
    """

    def __init__(self, fileobj, name):
        self.name = name
        self._f = fileobj
        self.reader = Reader(fileobj, name)
        self.meta = {}
        for section in self.reader.sections:
            for c in section.comments:
                if c.startswith(META_PREFIX):
                    try:
                        meta = json.loads(c[len(META_PREFIX):])
                        if isinstance(meta, dict):
                            self.meta = meta
                    except ValueError:
                        pass
        offset = self.meta.get("offset_ns", 0)
        self.offset_ns = offset if isinstance(offset, int) else 0
        self.notes = []
        self.counts = {"packets": 0, "messages": 0, "skipped_packets": 0, "foreign_messages": 0}
        self.first_ts = self.last_ts = None
        self._noted = set()
        self.context = FileContext()

    @classmethod
    def open(cls, path):
        if path == "-":
            return cls(sys.stdin.buffer, "stdin")
        try:
            f = open(path, "rb")
        except OSError as e:
            raise NlbpfError(f"cannot read {path}: {e.strerror}") from None
        if os.path.isdir(path):
            raise NlbpfError(f"cannot read {path}: it is a directory")
        try:
            return cls(f, path)
        except Exception:
            f.close()
            raise

    def close(self):
        if self._f is not sys.stdin.buffer:
            self._f.close()

    @property
    def families(self):
        return families_from_json(self.meta.get("genl_families"))

    @property
    def lost(self):
        """Events the recorder lost (from the statistics block), or None if not known."""
        st = [s.ifdrop for s in self.reader.stats.values() if s.ifdrop is not None]
        return sum(st) if st else None

    def _note(self, key, text):
        if key not in self._noted:
            self._noted.add(key)
            self.notes.append(text)

    # -- packets -> records ----------------------------------------------
    def _ts(self, wall):
        if self.first_ts is None:
            self.first_ts = wall
        self.last_ts = wall
        return wall - self.offset_ns

    def _packet_records(self, pkt):
        """(records, foreign) for one packet."""
        if pkt.iface.linktype != LINKTYPE_NETLINK:
            self.counts["skipped_packets"] += 1
            self._note(("linktype", pkt.iface.linktype),
                       f"{self.name}: skipped packets of link type {pkt.iface.linktype} "
                       f"(not netlink, {LINKTYPE_NETLINK})")
            return [], False
        data = pkt.data
        if len(data) < 16:
            self.counts["skipped_packets"] += 1
            self._note("short", f"{self.name}: skipped packets shorter than the 16-byte "
                                f"netlink cooked header")
            return [], False
        pkttype, hatype, halen, addr, protocol = COOKED.unpack_from(data)
        if hatype != ARPHRD_NETLINK:
            self._note("hatype", f"{self.name}: packets with ARPHRD type {hatype}, not "
                                 f"netlink ({ARPHRD_NETLINK}); read as netlink anyway")
        ts = self._ts(pkt.ts_ns)
        body = data[16:]
        for comment in pkt.comments:
            meta = decode_comment(comment)
            if meta.get("event") == "context":
                self.context.add(meta)
                return [], False
            if "event" in meta:
                ev = event_from_comment(meta, ts, protocol)
                return ([ev] if ev is not None else []), False
            if "pid" in meta and "dir" in meta:
                msg = message_from_comment(meta, ts, protocol, body, pkt.orig_len)
                if msg is not None:
                    return [msg], False
        if halen == 8 and len(addr) == 8:
            # nlbpf's classic pcap: pid and tid in the address, direction in the type
            pid, tid = struct.unpack(">II", addr)
            direction = DIR_OF_PKTTYPE.get(pkttype, REQUEST)
            return [Message(ts_ns=ts, pid=pid, tid=tid, comm=UNKNOWN_COMM, protocol=protocol,
                            direction=direction, data=body,
                            length=max(0, pkt.orig_len - 16))], False
        return self._split(ts, protocol, body, pkt.orig_len - 16), True

    def _split(self, ts, protocol, body, orig_len):
        """A foreign packet (nlmon: one skb) -> its messages."""
        out = []
        off = 0
        # one skb goes one way: the first message says which
        flags = int.from_bytes(body[6:8], "little") if len(body) >= 16 else 0
        direction = REQUEST if flags & NLM_F_REQUEST else REPLY
        while off < len(body):
            avail = len(body) - off
            # as the probes do: no header -> nlmsg_len 0; a bad one is kept as it is
            length = int.from_bytes(body[off:off + 4], "little") if avail >= 16 else 0
            if length < 16:
                out.append(self._foreign(ts, protocol, direction, body[off:], length))
                break
            chunk = body[off:off + min(length, avail)]
            out.append(self._foreign(ts, protocol, direction, chunk, length))
            off += (length + 3) & ~3
        if orig_len > len(body):
            self._note("snap", f"{self.name}: some packets were cut at the capture's snap length")
        return out

    def _foreign(self, ts, protocol, direction, data, length):
        return Message(ts_ns=ts, pid=0, tid=0, comm=UNKNOWN_COMM, protocol=protocol,
                       direction=direction, data=data, length=length)

    def records(self):
        """Message / SyscallError / Extack records in file order.

        Raises PcapError for damage (after yielding what came before it);
        a file cut short just ends (see notes)."""
        foreign = None          # once a foreign packet shows up: [(rec, is_foreign)]
        try:
            for pkt in self.reader:
                self.counts["packets"] += 1
                recs, is_foreign = self._packet_records(pkt)
                if is_foreign and foreign is None:
                    foreign = []
                    self._note("nopid", f"{self.name} has no process information (an nlmon "
                                        f"capture?): pid is the netlink port id, comm is "
                                        f"'{UNKNOWN_COMM}'")
                for rec in recs:
                    if isinstance(rec, Message):
                        self.counts["messages"] += 1
                        if is_foreign:
                            self.counts["foreign_messages"] += 1
                    if foreign is None:
                        yield rec
                    else:
                        foreign.append((rec, is_foreign))
        finally:
            if self.reader.truncated:
                self._note("cut", self.reader.truncated)
        if foreign:
            resolve_ports([r for r, f in foreign if f])
            for rec, _ in foreign:
                yield rec


def _is_notification(req, msg):
    """A route change's echo to listeners carries the request's seq and port id."""
    if req.protocol != 0 or msg.nl_type in (NLMSG_ERROR, NLMSG_DONE):
        return False
    t = req.nl_type or 0
    return (t >= 16 and (t & 3) in (0, 1) and not req.nl_flags & NLM_F_ECHO
            and not msg.nl_flags & NLM_F_MULTI)


def resolve_ports(msgs):
    """Give foreign (pid-less) messages a process key: the socket's netlink port id.

    Replies carry the receiving socket's port id; requests usually carry 0, so
    each request takes the port id of its first reply (same protocol and seq).
    Kernel messages that answer no request are notifications."""
    pending = {}
    prev = None
    tails = []
    for m in msgs:
        if m.length < 16 or len(m.data) < 16:
            # the bytes after the last message of a buffer: they went where it went
            if prev is not None and prev.ts_ns == m.ts_ns and prev.protocol == m.protocol:
                tails.append((m, prev))
            continue
        prev = m
        if m.direction == REQUEST:
            m.portid = m.nl_pid
            pending.setdefault((m.protocol, m.seq), []).append(m)
            continue
        port = m.nl_pid
        cands = pending.get((m.protocol, m.seq))
        req = None
        if cands:
            req = next((r for r in cands if r.portid == port), None) or \
                next((r for r in cands if not r.portid), None)
        if req is None or not port or _is_notification(req, m):
            m.direction = NOTIFY
            continue
        req.portid = port
        m.direction = REPLY
        m.portid = port
        final = (m.nl_type in (NLMSG_ERROR, NLMSG_DONE)
                 or (not m.nl_flags & NLM_F_MULTI and not req.nl_flags & NLM_F_ACK))
        if final:
            cands.remove(req)
    for m, before in tails:
        m.portid = before.portid
    for m in msgs:
        m.pid = m.portid
