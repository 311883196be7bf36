"""RingReader on a ring laid out in plain memory, the way the kernel maps one:
records in order, BUSY ones not taken yet, DISCARD ones skipped, a record that
wraps around the end read whole from the second mapping, the backlog bounded."""
import ctypes as ct
import struct

import pytest

from nlbpf.capture.ringbuf import BUSY, DISCARD, RingReader, ring_records

SIZE = 256


class FakeRing:
    """consumer page, producer page, and the data pages twice (the double mapping)."""

    def __init__(self, size=SIZE, **kw):
        self.size = size
        self.mem = (ct.c_ubyte * (8192 + 2 * size))()
        base = ct.addressof(self.mem)
        self.prod = 0
        self.reader = RingReader(base, base + 4096, base + 8192, size, **kw)

    def _put(self, pos, data):
        for i, b in enumerate(data):
            at = (pos + i) % self.size
            self.mem[8192 + at] = b
            self.mem[8192 + at + self.size] = b

    def write(self, sample, flags=0):
        """Reserve and write one record; its header's position (to commit it later)."""
        at = self.prod
        self._put(at, struct.pack("<II", len(sample) | flags, 0) + sample)
        self.prod += (len(sample) + 8 + 7) & ~7
        struct.pack_into("<Q", self.mem, 4096, self.prod)
        return at

    def commit(self, at, length):
        self._put(at, struct.pack("<I", length))

    @property
    def cons(self):
        return struct.unpack_from("<Q", self.mem, 0)[0]

    def take(self, limit=1 << 30):
        got = []
        self.reader.fill()
        self.reader.each(lambda buf, off, size: got.append(bytes(buf[off:off + size])), limit)
        return got


def test_records_come_in_order_and_their_space_goes_back():
    ring = FakeRing()
    samples = [bytes([i]) * (i * 3 + 1) for i in range(5)]
    for s in samples:
        ring.write(s)
    assert ring.take() == samples
    assert ring.cons == ring.prod and ring.reader.backlog == 0
    assert ring.take() == []


def test_a_busy_record_stops_the_reader_until_it_is_committed():
    ring = FakeRing()
    ring.write(b"first")
    busy = ring.write(b"second", BUSY)
    ring.write(b"third")
    assert ring.take() == [b"first"]
    assert ring.cons == 16                       # up to the busy one, no further
    ring.commit(busy, 6)
    assert ring.take() == [b"second", b"third"]


def test_discarded_records_are_skipped():
    ring = FakeRing()
    ring.write(b"kept")
    ring.write(b"dropped!", DISCARD)
    ring.write(b"also kept")
    assert ring.take() == [b"kept", b"also kept"]
    assert ring.cons == ring.prod


def test_a_record_that_wraps_around_the_end_is_whole():
    ring = FakeRing()
    seen = []
    for i in range(40):                          # ~20 times around a 256-byte ring
        sample = bytes([i]) * (17 + i * 7 % 90)
        ring.write(sample)
        seen += ring.take()
        assert seen[-1] == sample
    assert len(seen) == 40


def test_the_backlog_is_bounded_and_handed_on_in_batches():
    ring = FakeRing(backlog_cap=64)
    samples = [bytes([i]) * 20 for i in range(8)]     # 32 bytes each in the ring
    for s in samples:
        ring.write(s)
    ring.reader.fill()
    assert ring.reader.backlog == 64 and ring.cons == 64    # the rest stays in the ring
    got = []
    keep = lambda buf, off, size: got.append(bytes(buf[off:off + size]))  # noqa: E731
    assert ring.reader.each(keep, 1) == 1 and ring.reader.backlog == 64   # half a chunk
    assert ring.reader.each(keep, 10) == 1 and ring.reader.backlog == 0
    while ring.reader.fill():
        ring.reader.each(keep, 10)
    assert got == samples


def test_fill_stops_where_it_is_told():
    ring = FakeRing()
    for i in range(4):
        ring.write(bytes([i]) * 8)                      # 16 bytes each in the ring
    assert ring.reader.produced() == 64
    assert ring.reader.fill(upto=32) == 32 and ring.cons == 32
    assert ring.reader.fill(upto=32) == 0
    assert ring.reader.fill() == 32


@pytest.mark.parametrize("spool", [False, True])
def test_the_final_drain_takes_the_whole_ring_past_a_full_backlog(spool):
    """At the end of a run the backlog may be near its cap with more in the ring: the
    drain takes the rest as the backlog empties (once it was left in the ring, neither
    handed on nor counted lost), and stops at what was written when it began."""
    from nlbpf.capture.loader import Capture
    from nlbpf.filters import Filters
    ring = FakeRing(size=512, backlog_cap=64)
    samples = [bytes([i]) * 20 for i in range(12)]     # 32 bytes each: 6 backlogs' worth
    for s in samples:
        ring.write(s)
    capture = Capture(mode="trace", filters=Filters())
    capture.bpf, capture._ring = object(), ring.reader
    got, spooled = [], []
    capture._take = lambda buf, off, size: capture._pending.append(bytes(buf[off:off + size]))
    if spool:
        capture._raw_sink = lambda kind, span: spooled.append(span)
    for rec in capture.drain():
        got.append(rec)
        if len(got) == 1:
            ring.write(b"late" * 5)                     # written while draining: not taken
    if spool:
        got = [bytes(span[off:off + size]) for span in spooled
               for off, size, _ in ring_records(span)]
    assert got == samples
    assert ring.reader.backlog == 0


def test_a_batch_stops_at_its_bytes_too():
    """A record can become hundreds (an EV_CHUNK of dump parts): a batch is bounded by
    the bytes it hands on as well as by how many records."""
    ring = FakeRing()
    samples = [bytes([i]) * 40 for i in range(5)]
    for s in samples:
        ring.write(s)
    ring.reader.fill()
    got = []
    keep = lambda buf, off, size: got.append(bytes(buf[off:off + size]))  # noqa: E731
    assert ring.reader.each(keep, 100, max_bytes=80) == 2          # 40 + 40 reaches 80
    assert ring.reader.each(keep, 100, max_bytes=1) == 1           # always at least one
    assert ring.reader.each(keep, 100) == 2
    assert got == samples


def test_ring_size_must_be_a_power_of_two():
    mem = (ct.c_ubyte * 8192)()
    with pytest.raises(ValueError):
        RingReader(ct.addressof(mem), ct.addressof(mem) + 8, ct.addressof(mem) + 16, 100)


class BackloggedCapture:
    def __init__(self):
        self.waiting = 0

    def backlog(self):
        return self.waiting, 80 << 20

    def stats(self):
        return {"lost": 0, "walk_truncated": 0, "pending_full": 0}


def test_falling_behind_is_said_once_until_the_reader_catches_up(capsys):
    from nlbpf.commands.live import LostReporter
    cap = BackloggedCapture()
    rep = LostReporter(cap)
    said = []
    for mb in (10, 30, 41, 60, 79, 50, 5, 35, 60):
        cap.waiting = mb << 20
        rep.check()
        said.append("falling behind" in capsys.readouterr().err)
    # over half full: once; below a tenth: re-armed; over half again: once more
    assert said == [False, False, True, False, False, False, False, False, True]
