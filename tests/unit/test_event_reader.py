"""EventReader: one struct.unpack gives the fields bcc's ctypes class gives, or it
declines, and convert() makes the same record from either."""
import ctypes as ct
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from nlevent import nl_event_class  # noqa: E402

from nlbpf.capture.records import (DIR_RECV, DIR_SEND, EV_EXTACK, EV_MSG, EV_SPAN, EV_SYSERR,
                                   EventReader, convert)


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
        addr, size = ct.addressof(buf), ct.sizeof(buf)
        fields = reader.read(addr)
        for name, _ in Event._fields_[:-1]:
            want = getattr(ev, name)
            got = getattr(fields, name)
            assert got.split(b"\0")[0] == want if isinstance(want, bytes) else got == want, name
        assert convert(fields, reader.payload(fields, addr, size)) == convert(ev)


def test_payload_stops_at_the_size_handed_over():
    reader = EventReader.for_class(Event)
    ev, buf = random_event(random.Random(1), EV_MSG)
    ev.cap_len = 64
    addr = ct.addressof(buf)
    fields = reader.read(addr)
    assert len(reader.payload(fields, addr, Event.data.offset + 10)) == 10
    assert reader.payload(fields, addr, Event.data.offset - 4) == b""


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
