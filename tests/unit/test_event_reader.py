"""EventReader: one struct.unpack gives the fields bcc's ctypes class gives, or it
declines, and convert() makes the same record from either."""
import ctypes as ct
import dataclasses
import random

import pytest

from tests.helpers.nlevent import nl_event_class

from nlbpf.capture.ksyms import SYMBOLS
from nlbpf.capture.records import (DIR_RECV, DIR_SEND, EV_EXTACK, EV_MSG, EV_SPAN, EV_SYSERR,
                                   EVF_CALL_END, EVF_IN_HANDLER, EVF_NO_START, EVF_SKIPPED_INTR,
                                   EVF_OVERLONG, EVF_SPLIT, MESSAGE_FIELDS, SC_KERNEL, SYSCALLS, CtypesReader,
                                   EventReader, convert)
from nlbpf.netlink import headerless
from nlbpf.model import Message


# nlbpf.h's layout as bcc's table.event() builds it: u64 fields come as c_ulong
# (8 bytes here, while struct's "=L" is 4), comm as c_char arrays
Event = nl_event_class(64)


def random_event(rnd, kind):
    buf = ct.create_string_buffer(ct.sizeof(Event))
    ev = Event.from_buffer(buf)
    for name, ctype in Event._fields_:
        if name in ("comm", "holder_comm"):
            setattr(ev, name, rnd.choice([b"ip", b"", b"kube-proxy12345", b"\xff\xfe"]))
        elif name != "data":
            bits = 8 * ct.sizeof(ctype)
            signed = ctype in (ct.c_int,)
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            setattr(ev, name, rnd.choice([lo, hi, 0, 1, rnd.randint(lo, hi)]))
    ev.kind, ev.dir = kind, rnd.choice([DIR_SEND, DIR_RECV])
    ev.cap_len = rnd.choice([0, 5, 16, 64, 65, 3000])
    payload = bytes(rnd.randrange(256) for _ in range(64))
    ct.memmove(ct.addressof(buf) + Event.data.offset, payload, 64)
    return ev, buf


@pytest.mark.parametrize("kind", [EV_MSG, EV_SYSERR, EV_SPAN, EV_EXTACK])
def test_reader_and_ctypes_give_the_same_record(kind):
    reader = EventReader.for_class(Event)
    assert reader is not None and reader.data_offset == Event.data.offset
    rnd = random.Random(kind)
    for _ in range(300):
        ev, buf = random_event(rnd, kind)
        raw, size = buf.raw, ct.sizeof(buf)
        fields = reader.read(raw, 0, size)
        for name, _ in Event._fields_[:-1]:
            want = getattr(ev, name)
            got = getattr(fields, name)
            assert got.split(b"\0")[0] == want if isinstance(want, bytes) else got == want, name
        assert convert(fields, reader.payload(fields, raw, 0, size)) == convert(ev)
        # bcc's class through CtypesReader (the fallback) gives the same record
        fallback = CtypesReader(Event)
        copied = fallback.read(raw, 0, size)
        assert convert(copied, fallback.payload(copied, raw, 0, size)) == convert(ev)


def test_payload_stops_at_the_size_handed_over():
    reader = EventReader.for_class(Event)
    ev, buf = random_event(random.Random(1), EV_MSG)
    ev.cap_len = 64
    raw = b"x" * 8 + buf.raw          # at an offset, as in a backlog chunk
    fields = reader.read(raw, 8, len(buf.raw))
    assert len(reader.payload(fields, raw, 8, Event.data.offset + 10)) == 10
    assert reader.payload(fields, raw, 8, Event.data.offset - 4) == b""
    assert reader.read(raw, 8, reader.header.size - 1) is None       # too short for the fields
    assert CtypesReader(Event).read(raw, 8, Event.data.offset - 1) is None


class Nested(ct.Structure):
    _fields_ = [("x", ct.c_uint)]


@pytest.mark.parametrize("fields", [
    [("a", ct.c_uint), ("arr", ct.c_uint * 2), ("data", ct.c_ubyte * 8)],   # non-char array
    [("a", ct.c_uint), ("n", Nested), ("data", ct.c_ubyte * 8)],            # nested struct
    [("a", ct.c_uint), ("p", ct.c_char_p), ("data", ct.c_ubyte * 8)],       # pointer
    [("a", ct.c_uint), ("b", ct.c_uint)],                                   # no data
])
def test_reader_declines_what_it_cannot_express(fields):
    cls = type("Odd", (ct.Structure,), {"_fields_": fields})
    assert EventReader.for_class(cls) is None


def keyword_message(ev, data):
    """What convert() must give for an EV_MSG, built by field name (it passes them
    by position, for speed)."""
    send = ev.dir == DIR_SEND
    uevent = headerless(ev.proto, data)      # a uevent (protocol 15): no netlink header
    if ev.peer_portid:          # the other end is a process, not the kernel
        direction = "to_user" if send else "from_user"
    else:
        direction = "request" if send else ("notify" if ev.groups else "reply")
    return Message(
        ts_ns=ev.ts_ns if send else ev.ts_ns + ev.dur_ns, pid=ev.pid, tid=ev.tid,
        comm=bytes(ev.comm).split(b"\0")[0].decode("utf-8", "replace"), protocol=ev.proto,
        # a uevent's length is what was read
        direction=direction, data=data, length=len(data) if uevent else ev.nl_len,
        netns=ev.netns, cgroup=ev.cgroup,
        sock=ev.sk, portid=ev.portid, groups=ev.groups, syscall=SYSCALLS.get(ev.syscall, "?"),
        ret=ev.ret, dur_ns=ev.dur_ns, lock_wait_ns=ev.lock_wait_ns, lock_holder_pid=ev.holder_pid,
        lock_holder_comm=(bytes(ev.holder_comm).split(b"\0")[0].decode("utf-8", "replace")
                          if ev.holder_pid else ""),
        extack=None, skipped_parts=ev.skipped_parts, skipped_bytes=ev.skipped_bytes,
        skipped_intr=bool(ev.flags & EVF_SKIPPED_INTR), split=bool(ev.flags & EVF_SPLIT),
        handler_ns=ev.handler_ns, dump_ns=ev.dump_ns,
        in_handler=(bool(ev.flags & EVF_IN_HANDLER)
                    if ev.syscall == SC_KERNEL and direction == "notify" else None),
        start_slack_ns=ev.start_slack_ns, start_known=not ev.flags & EVF_NO_START,
        peer_portid=ev.peer_portid, peer_pid=ev.peer_pid,
        overlong=bool(ev.flags & EVF_OVERLONG) and not uevent,
        # a kworker holder's work function, named from kallsyms (an address where unknown)
        lock_holder_work=SYMBOLS.name(ev.holder_work) if ev.holder_pid else "")


def test_convert_puts_every_field_where_it_belongs():
    rnd = random.Random(7)
    reader = EventReader.for_class(Event)
    for i in range(2000):
        ev, buf = random_event(rnd, EV_MSG)
        ev.syscall = rnd.choice([SC_KERNEL, 2, 5, 99])
        ev.flags = rnd.randrange(EVF_OVERLONG << 1) & ~EVF_CALL_END     # all but call-end
        if i % 2:
            ev.peer_portid = 0                      # from (or to) the kernel
        if i % 7 == 0:
            ev.proto = 15                           # a uevent: no netlink header
        raw = buf.raw
        fields = reader.read(raw, 0, len(raw))
        data = reader.payload(fields, raw, 0, len(raw))
        got = convert(fields, data)
        assert got == keyword_message(ev, data)
        # and not equal by accident: every field of a random event differs from the defaults
        assert got.sock == ev.sk and got.lock_wait_ns == ev.lock_wait_ns


def test_message_fields_are_the_order_convert_passes():
    assert tuple(f.name for f in dataclasses.fields(Message)) == MESSAGE_FIELDS
