"""trace --spool's decoder side: the capture child's raw events, read back from
the spool as it grows, become the records a live run makes of them."""
import ctypes as ct
import json
import random
import struct

import pytest

from tests.helpers.nlevent import nl_event_class

from nlbpf.capture.loader import RAW_EVENT, RAW_RING
from nlbpf.capture.settings import CaptureSettings
from nlbpf.capture.records import DIR_RECV, DIR_SEND, EV_MSG, EventReader, records_of
from nlbpf.capture.ringbuf import BUSY, DISCARD, ring_records
from nlbpf.commands import spool
from nlbpf.commands.spool import END, FRAME, HELLO, STATS, SpoolCapture
from nlbpf.errors import NlbpfError
from nlbpf.model import Message

SNAPLEN = 64
Event = nl_event_class(SNAPLEN)


def event(i):
    """One EV_MSG event as the probes hand it over (cut to its data)."""
    buf = ct.create_string_buffer(ct.sizeof(Event))
    ev = Event.from_buffer(buf)
    ev.kind, ev.dir = EV_MSG, DIR_SEND if i % 2 == 0 else DIR_RECV
    ev.ts_ns, ev.pid, ev.tid, ev.comm = 1000 + i, 4242, 4243, b"ip"
    ev.proto, ev.sk, ev.nl_len, ev.nl_seq, ev.nl_type = 0, 0xffff0001, 36, i, 24
    data = struct.pack("=IHHII", 36, 24, 5, i, 0) + bytes(range(20))
    ev.cap_len = len(data)
    ct.memmove(ct.addressof(buf) + Event.data.offset, data, len(data))
    return buf.raw[:Event.data.offset + len(data)]


def ring_span(events, discard=()):
    """Events as ring records: 8-byte header, padded to 8."""
    out = b""
    for i, ev in enumerate(events):
        flags = DISCARD if i in discard else 0
        out += struct.pack("<II", len(ev) | flags, 0) + ev
        out += b"\0" * (-len(out) % 8)
    return out


def frame(kind, body):
    return FRAME.pack(kind, len(body)) + body


def hello(layout):
    return frame(HELLO, json.dumps({"layer": "syscall", "layer_reasons": ["fentry: no"],
                                    "layout": layout, "snaplen": SNAPLEN}).encode())


def expected(events):
    reader = EventReader.for_class(Event)
    out = []
    for ev in events:
        records_of(reader, ev, 0, len(ev), SNAPLEN, out)
    return out


def reader_for(path):
    sc = SpoolCapture({"snaplen": SNAPLEN})
    sc.f = open(path, "r+b", buffering=0)
    return sc


def spool_of(events):
    """A whole spool: the hello, each event as its own frame, the end."""
    return (hello(EventReader.for_class(Event).layout())
            + b"".join(frame(RAW_EVENT, ev) for ev in events) + frame(END, b""))


def read_all(path):
    """Read a spool file to its end as trace --spool's decoder does: (reader, records)."""
    sc = reader_for(path)
    sc._fill()
    sc._frames(None)
    got = []
    while not sc.finished:
        got += sc.poll(1)
    return sc, got


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(spool, "POLL_S", 0.001)


def test_the_layout_travels_as_json_and_reads_the_same_fields():
    reader = EventReader.for_class(Event)
    again = EventReader.from_layout(json.loads(json.dumps(reader.layout())))
    rnd = random.Random(7)
    for i in range(50):
        raw = event(rnd.randrange(1000))
        assert again.read(raw, 0, len(raw)) == reader.read(raw, 0, len(raw))
        ev = reader.read(raw, 0, len(raw))
        assert again.payload(ev, raw, 0, len(raw)) == reader.payload(ev, raw, 0, len(raw))


def test_ring_records_skip_discarded_and_stop_at_a_cut():
    evs = [event(i) for i in range(4)]
    span = ring_span(evs, discard={1})
    got = [span[off:off + size] for off, size, _ in ring_records(span)]
    assert got == [evs[0], evs[2], evs[3]]
    assert [span[o:o + n] for o, n, _ in ring_records(span[:-8])] == [evs[0], evs[2]]
    assert BUSY & DISCARD == 0


def test_a_spool_written_in_odd_pieces_gives_every_record_once(tmp_path):
    evs = [event(i) for i in range(40)]
    data = (hello(EventReader.for_class(Event).layout())
            + frame(RAW_RING, ring_span(evs[:30]))
            + b"".join(frame(RAW_EVENT, ev) for ev in evs[30:])
            + frame(STATS, json.dumps({"lost": 3, "emitted": 43, "walk_truncated": 0,
                                       "pending_full": 0}).encode())
            + frame(END, b""))
    path = tmp_path / "spool"
    path.write_bytes(b"")
    sc = reader_for(path)
    got = []
    cuts = [0, 3, 9, 50, 51, 200, 777, len(data) // 2, len(data) - 1, len(data)]
    with open(path, "ab", buffering=0) as w:
        for a, b in zip(cuts, cuts[1:]):
            w.write(data[a:b])
            if sc.layer is None:
                sc._fill()
                sc._frames(None)
                continue
            got += sc.poll(1)
    assert sc.layer == "syscall" and sc.layer_reasons == ["fentry: no"]
    got += sc.poll(1)
    assert sc.finished
    assert got == expected(evs) and all(isinstance(r, Message) for r in got)
    assert [r.seq for r in got] == list(range(40))
    assert sc.stats()["lost"] == 3 and sc.stats()["emitted"] == 43
    sc.close()


def test_falling_behind_is_said_once_and_catching_up_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(spool, "LAG_WARN_BYTES", 1000)
    monkeypatch.setattr(spool, "READ_BYTES", 64)
    path = tmp_path / "spool"
    path.write_bytes(spool_of([event(i) for i in range(30)]))
    sc, got = read_all(path)
    assert len(got) == 30
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("nlbpf: output is behind the traffic") and "none lost so far" in err[0]
    assert err[1] == "nlbpf: output has caught up with the traffic"
    sc.close()


def test_spool_file_that_cannot_be_made_is_one_clear_error(tmp_path):
    missing = tmp_path / "gone"
    with pytest.raises(NlbpfError, match="cannot create the spool file in .*gone"):
        SpoolCapture({"snaplen": SNAPLEN}, spool_dir=str(missing)).start()


def allocated(path):
    import os
    return os.stat(path).st_blocks * 512


def test_what_has_been_read_is_freed_from_the_spool(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "FREE_EVERY_BYTES", 1 << 16)
    monkeypatch.setattr(spool, "READ_BYTES", 1 << 16)
    evs = [event(i) for i in range(4000)]
    data = spool_of(evs)
    path = tmp_path / "spool"
    path.write_bytes(data)
    full = allocated(path)
    sc, got = read_all(path)
    assert got == expected(evs)                     # nothing read is lost to the freeing
    if sc._freed is None:
        pytest.skip(f"{tmp_path}'s filesystem cannot punch holes")
    assert path.stat().st_size == len(data)         # the reader's offsets stay valid
    assert allocated(path) < full // 4, (allocated(path), full)
    sc.close()


def test_a_full_spool_drops_events_counts_them_and_says_so(tmp_path, capsys):
    import os
    path = tmp_path / "spool"
    path.write_bytes(b"\1" * (256 << 10))
    fd = os.open(path, os.O_RDWR)
    try:
        limit = spool.SpoolLimit(fd, most=128 << 10)
        limit.check()
        assert limit.full and limit.limit == 128 << 10
        limit.drop(RAW_RING, ring_span([event(i) for i in range(5)], discard={2}))
        limit.drop(RAW_EVENT, event(9))
        assert limit.dropped == 5                   # 4 ring records (one discarded) + 1
        os.ftruncate(fd, 0)                         # the reader caught up
        limit.check()
        assert not limit.full
    finally:
        os.close(fd)
    sc = SpoolCapture({"snaplen": SNAPLEN})
    for dropped in (5, 5, 12):
        sc._buf = frame(STATS, json.dumps({"lost": 0, "emitted": 50, "walk_truncated": 0,
                                           "pending_full": 0, "spool_dropped": dropped,
                                           "spool_limit": 128 << 20}).encode())
        sc._frames([])
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "WARNING: 5 events dropped: the spool holds its most (128 MB) while the output "
        "catches up, 5 in total (TMPDIR can point at a larger filesystem)",
        "WARNING: 7 events dropped: the spool holds its most (128 MB) while the output "
        "catches up, 12 in total (TMPDIR can point at a larger filesystem)"]
    assert sc.stats()["spool_dropped"] == 12


def test_a_poll_hands_on_no_more_than_a_live_poll_does(tmp_path, monkeypatch):
    """One ring span of many events (a dump's parts) is handed on a batch per poll,
    resumed where the last one stopped; and the file is read no faster than that."""
    monkeypatch.setattr(spool, "POLL_BATCH", 7)
    monkeypatch.setattr(spool, "READ_BYTES", 256)
    evs = [event(i) for i in range(100)]
    data = (hello(EventReader.for_class(Event).layout())
            + frame(RAW_RING, ring_span(evs[:60]))
            + b"".join(frame(RAW_EVENT, ev) for ev in evs[60:]) + frame(END, b""))
    path = tmp_path / "spool"
    path.write_bytes(data)
    sc = reader_for(path)
    sc._fill()
    sc._frames(None)
    batches, buffered = [], []
    while not sc.finished:
        batches.append(sc.poll(1))
        buffered.append(len(sc._buf))
    got = [r for b in batches for r in b]
    assert got == expected(evs)
    assert max(len(b) for b in batches) <= 7
    assert len([b for b in batches if b]) >= 100 // 7
    # never more read ahead than READ_BYTES past a whole frame (the span is one frame)
    assert max(buffered) <= len(ring_span(evs[:60])) + 256 + 2 * FRAME.size, max(buffered)
    sc.close()


def test_a_ring_span_cut_by_the_budget_is_not_taken_for_a_dead_child(tmp_path, monkeypatch):
    """Records still waiting in a span being read are shown even once the child is gone."""
    monkeypatch.setattr(spool, "POLL_BATCH", 5)
    evs = [event(i) for i in range(30)]
    path = tmp_path / "spool"
    path.write_bytes(hello(EventReader.for_class(Event).layout()) + frame(RAW_RING, ring_span(evs)))
    sc = reader_for(path)
    sc._fill()
    sc._frames(None)
    sc.pid, sc.status = 1, 0            # the child has exited, without its END
    got = []
    while not sc.finished:
        got += sc.poll(1)
    assert got == expected(evs) and sc.died
    sc.close()


@pytest.mark.parametrize("asked", [True, False])
def test_without_a_spool_file_trace_decodes_as_it_captures_unless_spool_was_asked(
        monkeypatch, capsys, asked):
    from nlbpf.capture import environment
    ran = []

    def no_spool(spool_dir=None):
        raise spool.SpoolUnavailable("cannot create the spool file in /ro: Read-only file "
                                     "system (set TMPDIR to a writable directory)")
    monkeypatch.setattr(spool, "open_spool", no_spool)
    monkeypatch.setattr(environment, "require_root", lambda: None)
    monkeypatch.setattr(spool, "run_trace", lambda **kw: ran.append(kw))
    args = dict(as_json=True, duration=1.0, filters=None, snaplen=SNAPLEN, capture=CaptureSettings(),
                show_secrets=False,
                drain=2.0, command=None, verbose=False)
    if asked:
        with pytest.raises(NlbpfError, match="cannot create the spool file in /ro"):
            spool.run_spooled_trace(asked=True, **args)
        assert not ran
        return
    spool.run_spooled_trace(asked=False, **args)
    assert ran == [args]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("nlbpf: cannot create the spool file in /ro")
    assert "decoding as it captures instead (--no-spool)" in err[0]


@pytest.mark.parametrize("read_before", [0, 1, 5, 11, 3000])
def test_the_final_counters_are_found_without_reading_the_events(tmp_path, read_before):
    """A run that stops showing the spool early (a second Ctrl-C, the end's time limit,
    a closed stdout) still gets the child's last counters, from behind whatever is left
    unread, however much of a frame was read already."""
    path = tmp_path / "spool"
    span = ring_span([event(i) for i in range(300)])
    first = hello(EventReader.for_class(Event).layout())
    path.write_bytes(first + frame(STATS, json.dumps({"emitted": 1, "lost": 0}).encode())
                     + frame(RAW_RING, span) + frame(RAW_RING, span)
                     + frame(STATS, json.dumps({"emitted": 600, "lost": 3}).encode())
                     + frame(END, b""))
    sc = reader_for(path)
    sc._buf = sc.f.read(len(first))
    sc._frames(None)                      # the hello
    assert sc.layer == "syscall" and sc._buf == b""
    sc._buf = sc.f.read(read_before)      # part of what follows, read and not handled
    sc._skim()
    assert sc._stats == {"emitted": 600, "lost": 3}
