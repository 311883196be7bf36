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
the direction (4 request, 0 reply, 2 notification; 3 from another process,
1 to another process) and its 8 address bytes
(address length 8) the pid and tid; comm, netns, timing and the events are
lost.

Files made by others (nlmon + tcpdump) have no process at all, and one packet
per skb (several messages): their messages get the socket's netlink port id
as pid (the kernel names a process's first socket after its pid) and comm
'?'; requests, which carry port id 0, get it from their reply (PortResolver:
a request waits for it within a bounded window, see RESOLVE_HOLD_NS).

Reading trusts nothing in the file: a comment's values, the metadata JSON and
the context events' JSON are used when they have the shape and range nlbpf
writes, and otherwise ignored (with one warning); strings come out as valid
Unicode (bad UTF-8 and lone surrogates become U+FFFD); nothing read is kept
for longer than a bounded window, whatever the file's size.
"""
import dataclasses
import functools
import json
import os
import platform
import re
import struct
import sys
import time
from collections import deque
from operator import attrgetter

from .. import __version__
from ..capture.records import Extack
from ..capture.abi import DEFINES
from ..model import Message, SyscallError, REQUEST, REPLY, NOTIFY, FROM_USER, TO_USER
from .pcap import (FLAG_INBOUND, FLAG_MULTICAST, FLAG_OUTBOUND, FLAG_UNICAST, NS,
                       PcapError, PcapngWriter, PcapWriter, Reader)
from ..errors import NlbpfError
from ..netlink import (NLM_F_ECHO, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
                      headerless, is_final_reply)
from ..decode import GenlFamilies

LINKTYPE_NETLINK = 253
ARPHRD_NETLINK = 824
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4
COOKED = struct.Struct(">HHH8sH")
META_PREFIX = "nlbpf-meta "
FORMAT_VERSION = 1
UNKNOWN_COMM = "?"


# messages between processes get packet types nothing else uses here, so that a classic
# pcap read back never takes them for the kernel's
PKTTYPE_OF = {REQUEST: PACKET_OUTGOING, REPLY: PACKET_HOST, NOTIFY: PACKET_MULTICAST,
              FROM_USER: PACKET_OTHERHOST, TO_USER: PACKET_BROADCAST}
DIR_OF_PKTTYPE = {v: k for k, v in PKTTYPE_OF.items()}
FLAGS_OF = {REQUEST: FLAG_OUTBOUND, REPLY: FLAG_INBOUND | FLAG_UNICAST,
            NOTIFY: FLAG_INBOUND | FLAG_MULTICAST, FROM_USER: FLAG_INBOUND | FLAG_UNICAST,
            TO_USER: FLAG_OUTBOUND}
DIRECTIONS = tuple(PKTTYPE_OF)
PEER_UNKNOWN = DEFINES["PEER_UNKNOWN"]


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text):
    """text with each lone surrogate (a JSON escape such as \\ud800 gives one) as U+FFFD:
    anything printed or encoded later can be, as UTF-8."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


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
            raw = clean_text(raw)
        out[key] = raw
    return out


# What any field of a record can hold: the kernel's values are at most 64 bits
# (s64 or u64). A comment's number outside that is not one nlbpf wrote: the field
# keeps its default (a bigger one would overflow the float arithmetic of the views).
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1


def _int(d, key, default=0, low=INT_MIN, high=INT_MAX):
    v = d.get(key)
    if v is None:
        return default
    try:
        v = int(v, 0)
    except (TypeError, ValueError):
        return default
    return v if low <= v <= high else default


# ------------------------------------------------------------ JSON in a file
# nlbpf writes JSON in two places: the section's nlbpf-meta comment and the
# `where` of context events. Both are small and shallow (the families table is
# 5 levels deep and a few KB); what a file holds beyond that is not nlbpf's.
JSON_MAX_DEPTH = 16
JSON_MAX_CHARS = 1 << 20
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')


def _json_depth(text):
    """How deep the JSON text's arrays and objects nest (strings skipped), without
    parsing it: json.loads recurses once per level, so 10,000 levels overflow Python's
    stack (RecursionError) before it can say the text is too deep."""
    depth = deepest = 0
    for c in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > JSON_MAX_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


def parse_json(text):
    """(value, None) for JSON text nlbpf could have written, else (None, why)."""
    if len(text) > JSON_MAX_CHARS:
        return None, f"longer than {JSON_MAX_CHARS} characters"
    if _json_depth(text) > JSON_MAX_DEPTH:
        return None, f"nested deeper than {JSON_MAX_DEPTH} levels"
    try:
        return json.loads(text), None
    except ValueError:      # not JSON; or an integer of more than 4300 digits
        return None, "not valid JSON"


def _is_int(v, low=INT_MIN, high=INT_MAX):
    return type(v) is int and low <= v <= high


def _is_text(v):
    return type(v) is str


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
                v = int(raw, 0)
            except ValueError:
                v = zero
            kw[name] = v if INT_MIN <= v <= INT_MAX else zero
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
    if kw["direction"] not in DIRECTIONS:
        return None
    length = _int(meta, "len", orig_len - 16, 0, 0xFFFFFFFF)     # nlmsg_len: a u32
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


WHERE_KEYS = ("netns_name", "cgroup_path", "container")


def where_from_json(text):
    """A context event's `where` -> {"netns_name", "cgroup_path", "container"}, or None if
    it is not what nlbpf writes (Context.describe: two strings or null, and a dict of
    strings or null). Keys other than those are left out: they would land among the
    record's own keys."""
    where, _why = parse_json(text)
    if not isinstance(where, dict):
        return None
    out = {}
    for key in WHERE_KEYS:
        v = where.get(key)
        if key == "container":
            if v is not None and not (isinstance(v, dict)
                                      and all(_is_text(x) or x is None for x in v.values())):
                return None
            v = {clean_text(k): clean_text(x) if x is not None else None
                 for k, x in v.items()} if v else None
        elif v is not None:
            if not _is_text(v):
                return None
            v = clean_text(v)
        out[key] = v
    return out


class FileContext:
    """Where records came from, as the recorder's machine said (context events).

    Stands in for nlbpf.places' live Context while a file is read: describe()
    answers from the file, never from this machine."""

    UNKNOWN = {"netns_name": None, "cgroup_path": None, "container": None}
    MAX = 65536             # (netns, cgroup) pairs kept, the oldest let go first (as live)

    def __init__(self):
        self.known = {}

    def add(self, meta):
        """Learns one context event; False if it is not one nlbpf could have written."""
        where = where_from_json(meta.get("where", ""))
        if where is None:
            return False
        key = (_int(meta, "netns"), _int(meta, "cgroup"))
        self.known.pop(key, None)
        self.known[key] = where
        while len(self.known) > self.MAX:
            self.known.pop(next(iter(self.known)))
        return True

    def describe(self, netns, cgroup, pid=None):
        where = self.known.get((netns, cgroup))
        if where is None:
            return dict(self.UNKNOWN)
        c = where["container"]
        return {**where, "container": dict(c) if c else None}


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


def family_from_json(item):
    """One [id, name, version, [[group id, group name], ...]] of families_to_json, with
    the types and ranges it writes; None if it is not one."""
    if not isinstance(item, list) or len(item) != 4:
        return None
    fid, name, version, groups = item
    if not (_is_int(fid, 1, 0xFFFF) and _is_text(name) and name
            and (version is None or _is_int(version, 0, 0xFFFFFFFF))
            and isinstance(groups, list)
            and all(isinstance(g, list) and len(g) == 2 and _is_int(g[0], 0, 0xFFFFFFFF)
                    and _is_text(g[1]) for g in groups)):
        return None
    return [fid, clean_text(name), version, [[gid, clean_text(g)] for gid, g in groups]]


def families_from_json(items):
    fams = GenlFamilies()
    for item in items if isinstance(items, list) else ():
        fam = family_from_json(item)
        if fam is not None:
            fid, name, version, groups = fam
            fams.add(fid, name, version, [tuple(g) for g in groups])
    return fams


# What nlbpf-meta holds (CaptureWriter): the type and range of each field read back.
# Fields of other names (a later nlbpf's) are left out; unusable ones are ignored,
# with one warning for the file.
META_FIELDS = {
    "v": lambda v: _is_int(v, 0, 0xFFFFFFFF),
    "nlbpf": _is_text,
    "offset_ns": lambda v: _is_int(v, INT_MIN, (1 << 63) - 1),     # wall - monotonic: an s64
    "snaplen": lambda v: _is_int(v, 0, 0xFFFFFFFF),
    "filters": _is_text,
    "genl_families": lambda v: isinstance(v, list),
    "secrets": _is_text,
}


def meta_from_json(text):
    """nlbpf-meta's JSON -> (the fields nlbpf can use, what was ignored or None)."""
    meta, why = parse_json(text)
    if why is not None:
        return {}, why
    if not isinstance(meta, dict):
        return {}, f"a JSON {type(meta).__name__}, not an object"
    out, bad = {}, []
    for key, ok in META_FIELDS.items():
        if key not in meta:
            continue
        v = meta[key]
        if not ok(v):
            bad.append(key)
            continue
        if key == "genl_families":
            v = [family_from_json(item) for item in v]
            if None in v:
                bad.append(key)
                v = [item for item in v if item is not None]
        elif _is_text(v):
            v = clean_text(v)
        out[key] = v
    return out, ("unusable " + ", ".join(bad)) if bad else None


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
        self.notes = []
        self._noted = set()
        self.meta = {}
        for section in self.reader.sections:
            for c in section.comments:
                if c.startswith(META_PREFIX):
                    self.meta, why = meta_from_json(c[len(META_PREFIX):])
                    if why is not None:
                        self._note("meta", f"{name}: ignored what it could not use of its "
                                           f"nlbpf-meta comment ({why})")
        self.offset_ns = self.meta.get("offset_ns", 0)
        self.counts = {"packets": 0, "messages": 0, "skipped_packets": 0, "foreign_messages": 0}
        self.first_ts = self.last_ts = None
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

    note = _note        # for the views: a warning about the file, once per key

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
            self._note("linktype", f"{self.name}: skipped packets of link type "
                                   f"{pkt.iface.linktype} (not netlink, {LINKTYPE_NETLINK}), "
                                   f"and of any other")
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
                if not self.context.add(meta):
                    self._note("context", f"{self.name}: ignored context events (netns, "
                                          f"cgroup, container names) it could not use")
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
            # between processes: which port is not in a classic pcap
            peer = PEER_UNKNOWN if direction in (FROM_USER, TO_USER) else 0
            return [Message(ts_ns=ts, pid=pid, tid=tid, comm=UNKNOWN_COMM, protocol=protocol,
                            direction=direction, data=body, peer_portid=peer,
                            length=max(0, pkt.orig_len - 16))], False
        return self._split(ts, protocol, body, pkt.orig_len - 16), True

    def _split(self, ts, protocol, body, orig_len):
        """A foreign packet (nlmon: one skb) -> its messages."""
        out = []
        off = 0
        if headerless(protocol, body):
            # a uevent: one message, the whole packet, from the kernel
            return [self._foreign(ts, protocol, NOTIFY, body, len(body))]
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

        Raises PcapError for damage (after yielding what came before it, those
        still waiting for their port included); a file cut short just ends (see
        notes)."""
        resolver = None         # once a foreign packet shows up
        try:
            for pkt in self.reader:
                self.counts["packets"] += 1
                recs, is_foreign = self._packet_records(pkt)
                if is_foreign and resolver is None:
                    resolver = PortResolver()
                    self._note("nopid", f"{self.name} has no process information (an nlmon "
                                        f"capture?): pid is the netlink port id, comm is "
                                        f"'{UNKNOWN_COMM}'")
                for rec in recs:
                    if isinstance(rec, Message):
                        self.counts["messages"] += 1
                        if is_foreign:
                            self.counts["foreign_messages"] += 1
                    if resolver is None:
                        yield rec
                    else:
                        yield from resolver.push(rec, is_foreign)
        except PcapError:
            if resolver is not None:
                yield from resolver.flush()
            raise
        finally:
            if self.reader.truncated:
                self._note("cut", self.reader.truncated)
        if resolver is not None:
            yield from resolver.flush()


def _is_notification(req, msg):
    """A route change's echo to listeners carries the request's seq and port id."""
    if req.protocol != 0 or msg.nl_type in (NLMSG_ERROR, NLMSG_DONE):
        return False
    t = req.nl_type or 0
    return (t >= 16 and (t & 3) in (0, 1) and not req.nl_flags & NLM_F_ECHO
            and not msg.nl_flags & NLM_F_MULTI)


# How long a foreign request waits for the reply that names its port, and what
# waits with it. The kernel answers inside the sendmsg call, so nlmon sees the
# first reply microseconds after the request; what has no reply at all is a
# request without NLM_F_ACK that worked (or one nlmon saw only half of). Order
# is kept, so everything after a waiting request waits too. The wait ends
#  - after 30 s of capture time: the correlator (correlate.EXPIRE_NS) forgets a
#    request after as long, so a later reply could not be paired anyway;
#  - or when what waits passes 32 MB (its data, plus RESOLVE_OVERHEAD per record:
#    what a Message costs beside its data, measured in CPython 3.11; some 20,000
#    messages): at nlmon's rates 30 s can hold millions, and this is what bounds
#    memory;
# and the request goes on with the best answer there is: the port id its header
# carries (0: not known). Requests stay in the table replies are matched against
# for as long (30 s), at most RESOLVE_PENDING_MAX of them: as many as the probes'
# own table of requests waiting for a reply (bpf `pending`, 16,384 entries).
RESOLVE_HOLD_NS = 30 * NS
RESOLVE_HOLD_BYTES = 32 << 20
RESOLVE_OVERHEAD = 1536         # bytes a waiting record costs beyond its data
RESOLVE_PENDING_MAX = 16384


class _Request:
    """A foreign request in the table replies are matched against."""
    __slots__ = ("msg", "protocol", "seq", "nl_type", "nl_flags", "portid", "ts_ns", "open")

    def __init__(self, msg):
        self.msg = msg              # None once it has gone on
        self.protocol, self.seq = msg.protocol, msg.seq
        self.nl_type, self.nl_flags = msg.nl_type, msg.nl_flags
        self.portid = msg.portid
        self.ts_ns = msg.ts_ns
        self.open = True            # in the table


class PortResolver:
    """Gives foreign (pid-less) messages a process key: the socket's netlink port id,
    as they stream by, in file order.

    Replies carry the receiving socket's port id; requests usually carry 0, so
    each request takes the port id of its first reply (same protocol and seq).
    Kernel messages that answer no request are notifications.

        for rec in resolver.push(rec, foreign): ...    # what can go on now
        for rec in resolver.flush(): ...               # at the end: the rest
    """

    def __init__(self, hold_ns=RESOLVE_HOLD_NS, hold_bytes=RESOLVE_HOLD_BYTES,
                 pending_max=RESOLVE_PENDING_MAX):
        self.hold_ns = hold_ns
        self.hold_bytes = hold_bytes
        self.pending_max = pending_max
        self.pending = {}           # (protocol, seq) -> [_Request], oldest first
        self.order = deque()        # every _Request, oldest first (some no longer open)
        self.open = 0
        # (rec, the _Request it waits for or None, the message before it if a tail, foreign)
        self.queue = deque()
        self.held = 0               # bytes in queue, as counted for hold_bytes
        self.now = None             # the newest capture time seen
        self.prev = None            # the last foreign message with a header
        self.prev_req = None        # its _Request, if it is a request waiting for its port

    # -- the matching (what resolve_ports did over a whole file) -------------
    def _forget_old(self):
        while self.order and (self.open > self.pending_max
                              or self.now - self.order[0].ts_ns > self.hold_ns):
            req = self.order.popleft()
            if req.open:
                self._close(req)

    def _close(self, req):
        req.open = False
        self.open -= 1
        key = (req.protocol, req.seq)
        cands = self.pending[key]
        cands.remove(req)
        if not cands:
            del self.pending[key]

    def _classify(self, m):
        """-> (the _Request m waits for or None, the message before m if m is a tail)."""
        if m.length < 16 or len(m.data) < 16:
            # the bytes after the last message of a buffer: they went where it went
            prev = self.prev
            if prev is not None and prev.ts_ns == m.ts_ns and prev.protocol == m.protocol:
                return self.prev_req, prev
            return None, None
        self.prev, self.prev_req = m, None
        if m.direction == REQUEST:
            m.portid = m.nl_pid
            req = _Request(m)
            self.pending.setdefault((m.protocol, m.seq), []).append(req)
            self.order.append(req)
            self.open += 1
            if m.portid:
                return None, None
            self.prev_req = req
            return req, None
        port = m.nl_pid
        cands = self.pending.get((m.protocol, m.seq))
        req = None
        if cands:
            req = next((r for r in cands if r.portid == port), None) or \
                next((r for r in cands if not r.portid), None)
        if req is None or not port or _is_notification(req, m):
            m.direction = NOTIFY
            return None, None
        req.portid = port
        if req.msg is not None:
            req.msg.portid = port
        m.direction = REPLY
        m.portid = port
        if is_final_reply(m.nl_type, m.nl_flags, req.nl_flags):
            self._close(req)
        return None, None

    @staticmethod
    def _done(rec, req, before):
        """rec goes on: its port id is what is known now."""
        if before is not None:
            rec.portid = before.portid
        if req is not None and req.msg is rec:
            req.msg = None
        rec.pid = rec.portid

    # -- the stream ------------------------------------------------------
    def push(self, rec, foreign=True):
        """Records that can go on now that rec came (rec among them, or not yet)."""
        req = before = None
        if foreign:
            ts = rec.ts_ns
            self.now = ts if self.now is None or ts > self.now else self.now
            req, before = self._classify(rec)
            self._forget_old()
        waits = req is not None and not req.portid and req.msg is not None
        if not self.queue and not waits:
            if foreign:
                self._done(rec, req, before)
            return (rec,)
        self.queue.append((rec, req, before, foreign))
        self.held += len(getattr(rec, "data", b"")) + RESOLVE_OVERHEAD
        return self._release()

    def _release(self, everything=False):
        out = []
        queue = self.queue
        while queue:
            rec, req, before, foreign = queue[0]
            if (not everything and req is not None and not req.portid and req.msg is not None
                    and self.held <= self.hold_bytes
                    and self.now - req.ts_ns <= self.hold_ns):
                break
            queue.popleft()
            self.held -= len(getattr(rec, "data", b"")) + RESOLVE_OVERHEAD
            if foreign:
                self._done(rec, req, before)
            out.append(rec)
        return out

    def flush(self):
        """The end of the file: everything still waiting, as it is."""
        return self._release(everything=True)


def resolve_ports(msgs):
    """PortResolver over a list of foreign messages (changed in place)."""
    resolver = PortResolver()
    for m in msgs:
        resolver.push(m)
    resolver.flush()
