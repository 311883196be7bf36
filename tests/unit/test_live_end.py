"""How a run ends, with a stand-in for the probes: within seconds whatever the backlog,
with a closing line whose numbers add up, and with one line when stdout cannot be
written."""
import io
import os
import re
import signal
import sys
import time

import pytest

from nlbpf.commands import live
from nlbpf.capture.settings import CaptureSettings
from nlbpf.capture.records import Span
from nlbpf.commands import slow
from nlbpf.commands.common import LiveSource, Pipeline
from nlbpf.filters import Filters
from nlbpf.model import Message, REQUEST, REPLY

MS = 1_000_000


class FakeCapture:
    """Capture's interface: `records` handed over by poll() (a batch at a time) until
    they run out or the run stops, the rest by drain(); emitted counts them all."""
    layer, layer_reasons, mode = "syscall", [], "trace"

    def __init__(self, records, emitted=None, lost=0, on_poll=None, slow_drain_s=0):
        self.records = iter(records)
        self.emitted = emitted if emitted is not None else len(records)
        self.lost = lost
        self.on_poll = on_poll
        self.slow_drain_s = slow_drain_s
        self.detached = self.closed = False
        self.finished = False
        self.polls = 0

    def start(self):
        return self

    def poll(self, timeout_ms=100):
        self.polls += 1
        if self.on_poll:
            self.on_poll(self)
        batch = [r for _, r in zip(range(100), self.records)]
        if not batch:
            self.finished = True
        return batch

    def detach(self):
        self.detached = True

    def drain(self):
        for rec in self.records:
            time.sleep(self.slow_drain_s)
            yield rec

    def stats(self):
        return {"emitted": self.emitted, "lost": self.lost, "walk_truncated": 0,
                "pending_full": 0, "unseen": 0}

    final_stats = stats

    def backlog(self):
        return (0, 0)

    def close(self):
        self.closed = True


def numbers(line):
    m = re.search(r"; (\d+) events from the kernel: (\d+) shown, (\d+) not shown.*?, (\d+) lost"
                  r".*?, (\d+) not walked", line)
    assert m, line
    return tuple(int(g) for g in m.groups())


def getlink(seq, ts):
    data = (16).to_bytes(4, "little") + (18).to_bytes(2, "little") + (5).to_bytes(2, "little") \
        + seq.to_bytes(4, "little") + bytes(4)
    return Message(ts_ns=ts, pid=9, tid=9, comm="x", protocol=0, direction=REQUEST, data=data,
                   length=16, sock=1)


def test_a_backlog_of_any_size_is_shown_for_a_few_seconds_at_most(monkeypatch, capsys):
    """A million records wait when --duration ends: they are shown for DRAIN_S, then the
    run ends and says how many were not."""
    monkeypatch.setattr(live, "DRAIN_S", 0.3)
    fake = FakeCapture((getlink(i, i) for i in range(1_000_000)), emitted=1_000_000,
                       slow_drain_s=0.0001)
    seen = []
    started = time.monotonic()
    outcome = live.run({}, seen.append, duration=0.05, capture=fake)
    assert time.monotonic() - started < 3
    assert fake.detached and fake.closed
    assert 0 < outcome.shown == len(seen) < 1_000_000
    assert outcome.not_shown == 1_000_000 - len(seen)
    assert any("at most" in w for w in outcome.why)
    total, shown, not_shown, lost, walked = numbers(outcome.closing_line("x records"))
    assert total == shown + not_shown + lost + walked == 1_000_000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_ends_the_run_with_its_closing_line(sig, capsys):
    def stop(fake):
        if fake.polls == 3:
            os.kill(os.getpid(), sig)

    fake = FakeCapture([getlink(i, i) for i in range(1000)], on_poll=stop)
    pipe = Pipeline(as_json=True)
    before = signal.getsignal(sig)
    outcome = live.run({}, pipe.feed, capture=fake, on_end=pipe.end)
    err = capsys.readouterr().err
    assert fake.detached and fake.closed and outcome.shown == 1000
    total, shown, not_shown, lost, walked = numbers(err.splitlines()[-1])
    assert (total, shown, not_shown) == (1000, 1000, 0)
    assert signal.getsignal(sig) == before


def test_drain_sets_how_long_the_end_may_show(monkeypatch):
    """--drain: the user says how long the end goes on showing what was captured."""
    fake = FakeCapture((getlink(i, i) for i in range(1_000_000)), emitted=1_000_000,
                       slow_drain_s=0.0001)
    started = time.monotonic()
    outcome = live.run({}, lambda rec: None, duration=0.05, capture=fake, drain_s=0.5)
    took = time.monotonic() - started
    assert 0.5 <= took < 3 and "for 0.5 s at most, as --drain says" in outcome.why[0]


def test_a_second_signal_stops_showing_at_once(monkeypatch):
    monkeypatch.setattr(live, "DRAIN_S", 60)

    def stop(fake):
        if fake.polls == 1:
            os.kill(os.getpid(), signal.SIGINT)

    shown = []

    def on_record(rec):
        shown.append(rec)
        if len(shown) == 200:
            os.kill(os.getpid(), signal.SIGINT)     # the second: during the final drain

    fake = FakeCapture((getlink(i, i) for i in range(10_000_000)), emitted=10_000_000,
                       on_poll=stop)
    started = time.monotonic()
    outcome = live.run({}, on_record, capture=fake)
    assert time.monotonic() - started < 5
    assert outcome.why == ["stopped by a second signal"]
    assert outcome.shown == len(shown) and outcome.not_shown == 10_000_000 - len(shown)


def test_a_capture_that_stops_answering_cannot_hold_the_end_up(monkeypatch):
    """trace's capture child stopped, and its last frames never come: the end still
    comes after DRAIN_S (drain() says it has nothing yet instead of waiting in itself)."""
    monkeypatch.setattr(live, "DRAIN_S", 0.3)

    class Silent(FakeCapture):
        def drain(self):
            while True:
                time.sleep(0.01)
                yield None

    fake = Silent([getlink(i, i) for i in range(10)], emitted=20)
    started = time.monotonic()
    outcome = live.run({}, lambda rec: None, duration=0.05, capture=fake)
    assert time.monotonic() - started < 3
    assert outcome.shown == 10 and outcome.not_shown == 10


def test_stdout_that_cannot_be_written_is_one_line_and_a_failure(monkeypatch, tmp_path):
    """stdout on a full disk (/dev/full): the run stops, the probes are let go, and the
    command fails with one line instead of an OSError traceback."""
    full = open("/dev/full", "w")
    monkeypatch.setattr(sys, "stdout", full)
    fake = FakeCapture([getlink(i, i) for i in range(50_000)])
    with pytest.raises(live.OutputError) as e:
        live.run({}, lambda rec: live.write_line("x" * 100), capture=fake)
    assert str(e.value) == "cannot write the output: No space left on device"
    assert e.value.exit_code == 1 and fake.closed


def test_slow_never_says_a_call_ran_past_the_threshold_when_it_may_not_have(monkeypatch,
                                                                             capsys):
    """Socket layer: a call began between two looks 20 ms apart. Seen running 190 ms after
    the first of them, it has run 170-190 ms: under a 180 ms threshold it is not reported
    while it runs; at 215 ms (195-215) it is, with both bounds, once."""
    def looked(dur_ms):
        return Span(ts_ns=100 * MS, dur_ns=dur_ms * MS, pid=7, tid=7, comm="ip", protocol=0,
                    syscall="sendmsg", lock_wait_ns=0, holder_pid=0, holder_comm="",
                    start_slack_ns=20 * MS, in_progress=True)

    fake = FakeCapture([looked(190), looked(215), looked(400)])
    slow.run_slow(180 * MS, as_json=True, duration=None, filters=Filters(), snaplen=1024,
                  capture=CaptureSettings(), source=LiveSource(make_capture=lambda args: fake))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, out
    rec = __import__("json").loads(out[0])
    assert rec["running_min_us"] == 195_000 and rec["running_us"] == 215_000
    assert rec["start_slack_us"] == 20_000


def test_slow_counts_the_calls_whose_window_straddles_the_threshold(monkeypatch, capsys):
    from nlbpf.model import CallEnd
    req = getlink(4, 100 * MS)
    req.start_slack_ns = 20 * MS
    end = CallEnd(ts_ns=290 * MS, pid=9, tid=9, sock=1, seq=4)     # 170-190 ms
    fake = FakeCapture([req, end])
    slow.run_slow(180 * MS, as_json=True, duration=None, filters=Filters(), snaplen=1024,
                  capture=CaptureSettings(), source=LiveSource(make_capture=lambda args: fake))
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "1 calls not shown: they ran 180.00ms or a little less" in cap.err


def test_slow_spans_are_found_without_a_scan_of_all():
    """slow --threshold 0 under load: every call is a span and every request a record;
    each record looks at the spans that overlap it, not at the thousands kept."""
    spans = slow.BusyCalls()
    looked = []

    class Counting(Span):
        def __getattribute__(self, name):
            if name == "tid":
                looked.append(1)
            return super().__getattribute__(name)

    for i in range(50_000):
        spans.add(Counting(ts_ns=i * 1000, dur_ns=500, pid=i, tid=i, comm="ip", protocol=0,
                           syscall="sendmsg", lock_wait_ns=0, holder_pid=0, holder_comm=""))
    looked.clear()
    busy = spans.overlapping(49_990_000, 49_991_600, exclude_tid=-1)
    assert sorted(b["pid"] for b in busy) == [49_990, 49_991]
    assert len(looked) < 20, len(looked)
