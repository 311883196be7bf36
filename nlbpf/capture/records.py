"""Raw probe events -> nlbpf's records (model.Message and friends).

The ctypes layout comes from bcc (table.event()), which reads it from
bpf/nlbpf.h; so do the constants (abi.py).
"""
import ctypes as ct
import struct
from collections import namedtuple
from dataclasses import dataclass, fields

from ..model import CallEnd, Message, SyscallError, REQUEST, REPLY, NOTIFY, FROM_USER, TO_USER
from ..netlink import NETLINK_KOBJECT_UEVENT, headerless
from .abi import DEFINES, prefixed
from .ksyms import SYMBOLS

U32 = struct.Struct("<I")

EV_MSG, EV_SYSERR, EV_SPAN, EV_EXTACK, EV_CHUNK = (
    DEFINES[n] for n in ("EV_MSG", "EV_SYSERR", "EV_SPAN", "EV_EXTACK", "EV_CHUNK"))
DIR_SEND, DIR_RECV = DEFINES["DIR_SEND"], DEFINES["DIR_RECV"]
(EVF_SPLIT, EVF_FINAL, EVF_SKIPPED_INTR, EVF_HELD, EVF_IN_HANDLER, EVF_NO_START, EVF_IN_PROGRESS,
 EVF_CALL_END, EVF_OVERLONG) = (DEFINES[n] for n in (
    "EVF_SPLIT", "EVF_FINAL", "EVF_SKIPPED_INTR", "EVF_HELD", "EVF_IN_HANDLER", "EVF_NO_START",
    "EVF_IN_PROGRESS", "EVF_CALL_END", "EVF_OVERLONG"))
ST_LOST, ST_TRUNC_WALK, ST_EMITTED, ST_PENDING_FULL, ST_UNSEEN, ST_FOLLOW_FULL = (
    DEFINES[n] for n in ("ST_LOST", "ST_TRUNC_WALK", "ST_EMITTED", "ST_PENDING_FULL", "ST_UNSEEN",
                         "ST_FOLLOW_FULL"))
SC_KERNEL = DEFINES["SC_KERNEL"]
# SC_SENDMSG -> "sendmsg"; the kernel-function layer's "kernel"
SYSCALLS = {v: k[3:].lower() for k, v in prefixed("SC_").items()}

# the order convert() and split_chunk() pass Message's fields in
MESSAGE_FIELDS = ("ts_ns", "pid", "tid", "comm", "protocol", "direction", "data", "length",
                  "netns", "cgroup", "sock", "portid", "groups", "syscall", "ret", "dur_ns",
                  "lock_wait_ns", "lock_holder_pid", "lock_holder_comm", "extack",
                  "skipped_parts", "skipped_bytes", "skipped_intr", "split", "handler_ns",
                  "dump_ns", "in_handler", "start_slack_ns", "start_known", "peer_portid",
                  "peer_pid", "overlong", "lock_holder_work")
if tuple(f.name for f in fields(Message)) != MESSAGE_FIELDS:
    raise ImportError("model.Message's fields changed: update records.MESSAGE_FIELDS and convert()")


@dataclass
class Span:
    """A netlink call that took at least SPAN_MIN_NS (slow mode's context). On the
    socket layer, a call the task iterator watched: it began between ts_ns and
    ts_ns + start_slack_ns; in_progress: it has run past the threshold and goes on."""
    ts_ns: int
    dur_ns: int
    pid: int
    tid: int
    comm: str
    protocol: int
    syscall: str
    lock_wait_ns: int
    holder_pid: int
    holder_comm: str
    start_slack_ns: int = 0
    in_progress: bool = False
    netns: int = 0
    cgroup: int = 0
    holder_work: str = ""       # the owner is a kworker: the function it was running


@dataclass
class Extack:
    """netlink:netlink_extack text, raised while `tid` was in a netlink call."""
    ts_ns: int
    pid: int
    tid: int
    sock: int
    text: str
    seq: int = None            # kernel layer: the failed request's seq (exact pairing)


_STRS = {}      # comm bytes -> str: the same few names come in every event


def _str(chars):
    raw = bytes(chars)
    text = _STRS.get(raw)
    if text is None:
        text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        if len(_STRS) < 4096:
            _STRS[raw] = text
    return text


def _work(ev):
    """The function a kworker holding the lock ran (the probes give its address)."""
    addr = getattr(ev, "holder_work", 0)
    return SYMBOLS.name(addr) if addr else ""


def _cap(ev):
    """Bytes of ev.data to copy: never past the array, whatever cap_len says."""
    return max(0, min(ev.cap_len, ct.sizeof(ev.data)))


class EventReader:
    """Reads an event's fields before `data` with one struct.unpack.

    The layout is still bcc's (its ctypes class, parsed from nlbpf.h): this only
    turns it into a struct format, because reading ~25 ctypes attributes one by
    one is a third of the per-event cost at high rates. for_class() gives None
    for a layout it cannot express; the caller then reads the ctypes struct."""

    def __init__(self, cls, fmt, names, data_offset=None, data_size=None):
        self.header = struct.Struct(fmt)
        self.fields = namedtuple("Event", names)._make
        self.names = list(names)
        self.data_offset = cls.data.offset if cls is not None else data_offset
        self.data_size = cls.data.size if cls is not None else data_size

    def layout(self):
        """What from_layout() needs to read these events in another process
        (trace --spool's decoder, which loads no probes and so has no bcc class)."""
        return {"fmt": self.header.format, "names": self.names,
                "data_offset": self.data_offset, "data_size": self.data_size}

    @classmethod
    def from_layout(cls, d):
        return cls(None, d["fmt"], d["names"], int(d["data_offset"]), int(d["data_size"]))

    @classmethod
    def for_class(cls, event_cls):
        fmt, names, pos = ["="], [], 0
        for name, ctype in event_cls._fields_:
            if name == "data":
                break
            off = getattr(event_cls, name).offset
            if off < pos:
                return None
            if off > pos:
                fmt.append(f"{off - pos}x")
            if issubclass(ctype, ct.Array):
                if ctype._type_ is not ct.c_char:
                    return None
                code = f"{ctype._length_}s"       # _str() cuts at the NUL, as ctypes would
            else:
                code = getattr(ctype, "_type_", None)
                if not isinstance(code, str) or len(code) != 1 or code not in "bBhHiIlLqQc?":
                    return None
                if code in "lL" and ct.sizeof(ctype) == 8:
                    code = "q" if code == "l" else "Q"      # struct's "=l" is 4 bytes
            if struct.calcsize("=" + code) != ct.sizeof(ctype):
                return None
            fmt.append(code)
            names.append(name)
            pos = off + ct.sizeof(ctype)
        else:
            return None                             # no `data` field: not nlbpf's event
        if event_cls.data.offset < pos:
            return None
        return cls(event_cls, "".join(fmt), names)

    def read(self, buf, off, size):
        """The fields of the event of size bytes at buf[off:], or None if it is too short."""
        if size < self.header.size:
            return None
        return self.fields(self.header.unpack_from(buf, off))

    def payload(self, ev, buf, off, size):
        """Its data bytes: cap_len of them, never past the array or the size handed over."""
        n = min(ev.cap_len, self.data_size, size - self.data_offset)
        start = off + self.data_offset
        return bytes(buf[start:start + n]) if n > 0 else b""


class CtypesReader:
    """EventReader's interface over bcc's ctypes class, for a layout it declines."""

    def __init__(self, cls):
        self.cls = cls
        self.data_offset = cls.data.offset
        self.data_size = cls.data.size

    def read(self, buf, off, size):
        if size < self.data_offset:
            return None
        raw = bytes(buf[off:off + min(size, ct.sizeof(self.cls))])
        return self.cls.from_buffer_copy(raw.ljust(ct.sizeof(self.cls), b"\0"))

    payload = EventReader.payload


def convert(ev, data=None):
    """One bcc event -> a record, copying what it keeps. ev: the ctypes struct over
    the buffer, or EventReader's fields with data, the payload it read."""
    kind = ev.kind
    if kind == EV_MSG and ev.flags & EVF_CALL_END:
        return CallEnd(ts_ns=ev.ts_ns, pid=ev.pid, tid=ev.tid, sock=ev.sk, seq=ev.nl_seq,
                       lock_wait_ns=ev.lock_wait_ns, lock_holder_pid=ev.holder_pid,
                       lock_holder_comm=_str(ev.holder_comm) if ev.holder_pid else "",
                       lock_holder_work=_work(ev))
    if kind == EV_MSG:
        if data is None:
            data = ct.string_at(ct.addressof(ev.data), _cap(ev))
        # the other end: the kernel (port 0), or a process, whose messages are shown as
        # such and never taken for the kernel's
        peer = ev.peer_portid
        if ev.dir == DIR_SEND:
            direction = TO_USER if peer else REQUEST
        else:
            direction = FROM_USER if peer else NOTIFY if ev.groups else REPLY
        # a message crosses when its call hands it in (send) or returns with it (recv)
        ts = ev.ts_ns if ev.dir == DIR_SEND else ev.ts_ns + ev.dur_ns
        flags = ev.flags
        length, overlong = ev.nl_len, bool(flags & EVF_OVERLONG)
        # (the protocol first: this runs for every event)
        if ev.proto == NETLINK_KOBJECT_UEVENT and headerless(ev.proto, data):
            # the probes read its first bytes as a length, which they are not
            length, overlong = len(data), False
        # positional, in MESSAGE_FIELDS' order: keywords cost 3x as much, which
        # is 15% of `record` at 150k msgs/s (test_event_reader checks each field)
        return Message(
            ts, ev.pid, ev.tid, _str(ev.comm), ev.proto, direction, data, length,
            ev.netns, ev.cgroup, ev.sk, ev.portid, ev.groups,
            SYSCALLS.get(ev.syscall, "?"), ev.ret, ev.dur_ns,
            ev.lock_wait_ns, ev.holder_pid, _str(ev.holder_comm) if ev.holder_pid else "",
            None,                       # extack: the correlator pairs it in
            ev.skipped_parts, ev.skipped_bytes, bool(flags & EVF_SKIPPED_INTR),
            bool(flags & EVF_SPLIT), ev.handler_ns, ev.dump_ns,
            bool(flags & EVF_IN_HANDLER) if ev.syscall == SC_KERNEL and direction == NOTIFY
            else None,
            ev.start_slack_ns, not flags & EVF_NO_START, peer, ev.peer_pid,
            overlong, _work(ev) if ev.holder_pid else "")
    if kind == EV_CHUNK:
        raise ValueError("EV_CHUNK holds many messages: split_chunk() it")
    if kind == EV_EXTACK:
        if data is None:
            data = ct.string_at(ct.addressof(ev.data), _cap(ev))
        text = data.decode("utf-8", "replace")
        return Extack(ts_ns=ev.ts_ns, pid=ev.pid, tid=ev.tid, sock=ev.sk, text=text,
                      seq=ev.nl_seq if ev.syscall == SC_KERNEL else None)
    if kind == EV_SYSERR:
        return SyscallError(
            ts_ns=ev.ts_ns, pid=ev.pid, tid=ev.tid, comm=_str(ev.comm), protocol=ev.proto,
            syscall=SYSCALLS.get(ev.syscall, "?"), errno=-ev.ret, netns=ev.netns,
            cgroup=ev.cgroup, sock=ev.sk, portid=ev.portid, dropped=ev.skipped_parts)
    if kind == EV_SPAN:
        return Span(ts_ns=ev.ts_ns, dur_ns=ev.dur_ns, pid=ev.pid, tid=ev.tid,
                    comm=_str(ev.comm), protocol=ev.proto,
                    syscall=SYSCALLS.get(ev.syscall, "?"), lock_wait_ns=ev.lock_wait_ns,
                    holder_pid=ev.holder_pid,
                    holder_comm=_str(ev.holder_comm) if ev.holder_pid else "",
                    start_slack_ns=ev.start_slack_ns, in_progress=bool(ev.flags & EVF_IN_PROGRESS),
                    netns=ev.netns, cgroup=ev.cgroup, holder_work=_work(ev))
    return None


def split_chunk(ev, buf, off, size, snaplen, data_offset):
    """An EV_CHUNK (dump parts of one reply, back to back) -> one Message per part,
    each cut at snaplen like the probes cut single messages. buf[off:off + size]:
    the event as the buffer handed it over; nothing past it is read, whatever
    cap_len says. data_offset: where its data starts."""
    n = max(0, min(ev.cap_len, size - data_offset))
    start = off + data_offset
    raw = bytes(buf[start:start + n])
    # each part: Message's first 16 fields, positional (MESSAGE_FIELDS), the rest defaults
    who = (ev.ts_ns + ev.dur_ns, ev.pid, ev.tid, _str(ev.comm), ev.proto, REPLY)
    where = (ev.netns, ev.cgroup, ev.sk, ev.portid, 0, SYSCALLS.get(ev.syscall, "?"), ev.ret,
             ev.dur_ns)
    out = []
    pos = 0
    while pos + 16 <= n:
        length = U32.unpack_from(raw, pos)[0]
        if length < 16 or pos + length > n:
            break               # the probe only sends whole parts: a bad chunk stops here
        out.append(Message(*who, raw[pos:pos + min(length, snaplen)], length, *where))
        pos += (length + 3) & ~3
    return out


def records_of(reader, buf, off, size, snaplen, out):
    """Append to out the records of the event of size bytes at buf[off:]; how many."""
    ev = reader.read(buf, off, size)
    if ev is None:
        return 0
    if ev.kind == EV_CHUNK:
        parts = split_chunk(ev, buf, off, size, snaplen, reader.data_offset)
        out.extend(parts)
        return len(parts)
    rec = convert(ev, reader.payload(ev, buf, off, size))
    if rec is None:
        return 0
    out.append(rec)
    return 1
