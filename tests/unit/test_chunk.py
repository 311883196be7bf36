"""EV_CHUNK: dump parts the probe hands over in bulk become one Message each."""
import ctypes as ct
import struct

import pytest

from nlbpf.capture.records import EV_CHUNK, EventReader, convert, split_chunk
from nlbpf.model import REPLY

RTM_NEWROUTE, NLM_F_MULTI = 24, 2


class Ev(ct.Structure):
    """The fields split_chunk reads, data last (bcc builds the real one from nlbpf.h)."""
    _fields_ = [("ts_ns", ct.c_uint64), ("dur_ns", ct.c_uint64), ("sk", ct.c_uint64),
                ("cgroup", ct.c_uint64), ("pid", ct.c_uint32), ("tid", ct.c_uint32),
                ("netns", ct.c_uint32), ("portid", ct.c_uint32), ("ret", ct.c_int32),
                ("cap_len", ct.c_uint16), ("kind", ct.c_uint8), ("proto", ct.c_uint8),
                ("syscall", ct.c_uint8), ("comm", ct.c_char * 16), ("data", ct.c_uint8 * 64)]


OFF = Ev.data.offset


def part(seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), RTM_NEWROUTE, NLM_F_MULTI, seq, 99) + payload


def pad(b):
    return b + b"\0" * (-len(b) % 4)


def event(body, cap_len=None):
    """(ev, buf, size) as the ring buffer hands an EV_CHUNK over (buf: a copy of it)."""
    off = Ev.data.offset
    # the ring buffer record is header + cap bytes; the struct can be longer than that
    # (past them: more valid-looking parts, which must not be read)
    total = max(ct.sizeof(Ev), off + len(body)) + 256
    buf = ct.create_string_buffer((pad(part(1, b"z" * 4)) * 64)[:total], total)
    ev = Ev.from_buffer(buf)
    ev.ts_ns, ev.dur_ns, ev.sk, ev.pid, ev.tid = 1000, 50, 0xFFFF8880, 42, 43
    ev.netns, ev.portid, ev.ret, ev.kind, ev.proto, ev.syscall = 4026531840, 7, 3740, EV_CHUNK, 0, 5
    ev.comm = b"ip"
    ev.cap_len = len(body) if cap_len is None else cap_len
    ct.memmove(ct.addressof(buf) + off, body, len(body))
    return ev, buf.raw, off + len(body), buf


def test_every_part_becomes_a_reply_cut_at_snaplen():
    parts = [part(5, b"a" * 12), part(5, b"b" * 7), part(5, b"c" * 100)]
    ev, raw, size, _keep = event(b"".join(pad(p) for p in parts))
    msgs = split_chunk(ev, raw, 0, size, 64, OFF)
    assert [m.length for m in msgs] == [28, 23, 116]
    assert [m.data for m in msgs[:2]] == parts[:2]          # unpadded, whole
    assert msgs[2].data == parts[2][:64] and msgs[2].truncated
    for m in msgs:
        assert (m.direction, m.seq, m.nl_type, m.pid, m.tid, m.comm) == (REPLY, 5, RTM_NEWROUTE, 42, 43, "ip")
        assert (m.sock, m.portid, m.syscall, m.ts_ns) == (0xFFFF8880, 7, "recvfrom", 1050)


def test_a_lying_cap_len_or_a_cut_part_reads_nothing_past_the_event():
    body = pad(part(1, b"x" * 8)) + part(1, b"y" * 40)[:30]     # the second part is cut
    ev, raw, size, _keep = event(body, cap_len=60000)
    msgs = split_chunk(ev, raw, 0, size, 1024, OFF)
    assert [m.length for m in msgs] == [24]
    ev, raw, size, _keep = event(struct.pack("=IHHII", 3, 24, 2, 1, 0))   # length < 16
    assert split_chunk(ev, raw, 0, size, 1024, OFF) == []


def test_convert_refuses_a_chunk():
    ev, _addr, _size, _keep = event(pad(part(1, b"")))
    with pytest.raises(ValueError):
        convert(ev)


def test_chunk_split_through_the_event_reader_matches_ctypes():
    body = b"".join(pad(part(i, b"x" * i)) for i in range(1, 6))
    ev, raw, size, _keep = event(body)
    reader = EventReader.for_class(Ev)
    fields = reader.read(raw, 0, size)
    assert split_chunk(fields, raw, 0, size, 1024, reader.data_offset) == \
        split_chunk(ev, raw, 0, size, 1024, OFF)
    # the same event further into a buffer (a backlog chunk of the ring reader)
    assert split_chunk(reader.read(b"p" * 24 + raw, 24, size), b"p" * 24 + raw, 24, size, 1024,
                       OFF) == split_chunk(ev, raw, 0, size, 1024, OFF)
