"""Hardening without root: the whole record pipeline on hostile input, and the state
that must expire or stay bounded on long runs.

The pipeline here is the one a live run uses: a raw probe event (ctypes, as bcc
hands it over) -> records.convert -> secrets scrub -> Correlator -> the JSON and
text records of trace, errors and slow. Nothing in it may raise, hang, or grow
without bound, whatever a process sends.
"""
import ctypes as ct
import json
import struct
import time
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlbpf import secrets
from nlbpf.capture.records import EV_EXTACK, EV_MSG, EV_SPAN, EV_SYSERR, Extack, Span, convert
from nlbpf.commands.common import Pipeline, syscall_error_record
from nlbpf.places import live_context
from nlbpf.commands.errors import error_details
from nlbpf.commands.slow import SPAN_KEEP_NS, BusyCalls, slow_details, slow_record
from nlbpf.commands.top import TopState
from nlbpf.correlate import EXPIRE_NS, Correlator, classify_orphan, origin
from nlbpf.decode import GenlFamilies
from nlbpf.model import Message, REPLY, REQUEST, SyscallError
from nlbpf.output.records import MEMO_MAX, Decoder, message_record, transaction_record

from tests.helpers.nlevent import nl_event_class

SNAP = 96
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])


Event = nl_event_class(SNAP)     # struct nl_event (bpf/nlbpf.h) with a small SNAPLEN


def event(kind=EV_MSG, data=b"", cap_len=None, **kw):
    ev = Event()
    ev.kind = kind
    ct.memmove(ct.addressof(ev.data), data[:SNAP], min(len(data), SNAP))
    ev.cap_len = len(data[:SNAP]) if cap_len is None else cap_len
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


u8, u16, u32, u64 = (st.integers(0, 2 ** n - 1) for n in (8, 16, 32, 64))
NL_HEADERS = st.builds(lambda ln, t, fl, seq, rest: struct.pack("=IHHII", ln, t, fl, seq, 0) + rest,
                       st.one_of(st.integers(0, 40), st.integers(0, 2 ** 32 - 1)),
                       st.sampled_from([1, 2, 3, 16, 18, 20, 24, 25, 0x10, 0x12, 0x20, 0x7777]) | u16,
                       u16, st.integers(0, 7), st.binary(max_size=120))
PAYLOADS = st.one_of(st.binary(max_size=SNAP + 8), NL_HEADERS)


def raw_event(draw):
    data = draw(PAYLOADS)
    return event(kind=draw(st.sampled_from([EV_MSG, EV_MSG, EV_MSG, EV_EXTACK, EV_SYSERR,
                                              EV_SPAN, 0, 99])),
                 data=data,
                 cap_len=draw(st.one_of(st.just(None), u16)),
                 ts_ns=draw(st.integers(0, 10 ** 12)), dur_ns=draw(st.integers(0, 10 ** 9)),
                 sk=draw(st.sampled_from([0, 1, 2])), pid=draw(st.integers(0, 5)),
                 tid=draw(st.integers(0, 5)), dir=draw(u8), proto=draw(st.sampled_from([0, 4, 6, 9, 12, 15, 16, 21, 255])),
                 syscall=draw(u8), flags=draw(u8), groups=draw(st.sampled_from([0, 0, 1, 2 ** 31])),
                 ret=draw(st.integers(-600, 70000)), nl_len=draw(u32), nl_seq=draw(u32),
                 skipped_parts=draw(u32), skipped_bytes=draw(u64), holder_pid=draw(u32),
                 comm=draw(st.binary(max_size=16)), holder_comm=draw(st.binary(max_size=16)))


class Collect:
    """A Pipeline wired like trace, errors and slow at once, printing to a list."""

    def __init__(self):
        self.out = []
        self.spans = BusyCalls()
        self.pipe = Pipeline(as_json=True, on_message=self.on_message, on_txn=self.on_txn,
                             on_syscall_error=self.on_syscall_error, on_other=self.on_other)
        self.pipe.decoder = Decoder(families=GenlFamilies({0x20: "wireguard", 0x21: "macsec",
                                                           0x22: "nl80211"}))
        self.pipe.source = SimpleNamespace(live=False)   # offline: no live family refresh

    def emit(self, rec, detail=()):
        text = json.dumps(rec, default=str, ensure_ascii=False)
        json.loads(text)
        assert isinstance(rec["summary"], str)
        self.out.append(text)
        self.out.extend(detail)

    def on_message(self, msg, txn, completed):
        if txn is None:
            msg.direction = classify_orphan(msg)
        who = origin(self.pipe.correlator, msg) if msg.direction == "notify" else None
        self.emit(message_record(msg, txn, completed, self.pipe.decoder, 0, self.pipe.context,
                                   origin=who))

    def on_txn(self, txn):
        rec = transaction_record(txn, self.pipe.decoder, 0, self.pipe.context)
        self.emit(rec, error_details(rec))
        rec = slow_record(txn, self.pipe, self.spans)
        self.emit(rec, slow_details(rec))

    def on_syscall_error(self, err):
        self.emit(syscall_error_record(err, 0, self.pipe.context))

    def on_other(self, rec):
        if isinstance(rec, Span):
            self.spans.add(rec)


@settings(max_examples=400, **SETTINGS)
@given(st.lists(st.composite(lambda draw: raw_event(draw))(), max_size=12))
def test_hostile_events_through_the_whole_pipeline(events):
    c = Collect()
    for ev in events:
        rec = convert(ev)
        if isinstance(rec, Message):
            assert len(rec.data) <= SNAP                 # never past the event's buffer
        if rec is not None:
            c.pipe.feed(rec)
    c.pipe.tick({})
    for line in c.out:
        assert isinstance(line, str)


MESSAGES = st.builds(
    lambda d, direction, proto, sk, seq_from_data, ts: (d, direction, proto, sk, ts),
    PAYLOADS, st.sampled_from([REQUEST, REPLY, "notify"]),
    st.sampled_from([0, 4, 6, 12, 16]), st.sampled_from([0, 1]), st.booleans(),
    st.integers(0, 10 ** 11))


@settings(max_examples=400, **SETTINGS)
@given(st.lists(MESSAGES, max_size=16))
def test_hostile_messages_pair_and_render(msgs):
    """Message objects as a hostile process makes them: requests and replies with any bytes,
    lengths that lie, seqs that collide."""
    c = Collect()
    for data, direction, proto, sk, ts in msgs:
        length = struct.unpack_from("=I", data)[0] if len(data) >= 4 else len(data)
        c.pipe.feed(Message(ts_ns=ts, pid=7, tid=7, comm="hostile", protocol=proto,
                            direction=direction, data=data, length=length, sock=sk))
    c.pipe.feed(SyscallError(ts_ns=1, pid=7, tid=7, comm="hostile", protocol=2,
                             syscall="sendto", errno=111))
    c.pipe.feed(Extack(ts_ns=1, pid=7, tid=7, sock=1, text="\udcff" * 3))
    c.pipe.correlator.expire(10 ** 12)


@settings(max_examples=300, **SETTINGS)
@given(st.sampled_from([6, 16, 0]), PAYLOADS)
def test_scrub_never_raises_and_keeps_the_length(proto, data):
    fams = GenlFamilies({t: "wireguard" for t in (0x10 + 1, 0x12, 0x20)} | {0x21: "nl80211"})
    out = secrets.scrub(proto, data, fams)
    assert len(out) == len(data)
    # only ever zeros written
    assert all(a == b or a == 0 for a, b in zip(out, data))


def test_convert_clamps_a_lying_cap_len():
    ev = event(data=b"\x20\0\0\0" + bytes(28), cap_len=60000)
    rec = convert(ev)
    assert len(rec.data) == SNAP


# ----------------------------------------------------------------- expiry and bounds

def request(ts, seq, sock=1, pid=1):
    data = struct.pack("=IHHII", 32, 18, 5, seq, 0) + bytes(16)
    return Message(ts_ns=ts, pid=pid, tid=pid, comm="c", protocol=0, direction=REQUEST,
                   data=data, length=32, sock=sock)


def test_live_requests_expire_by_the_clock_even_without_traffic():
    """A live Pipeline's tick expires requests by CLOCK_MONOTONIC (the probes' clock), not by
    the last message seen: after the last request of a burst, nothing else needs to come."""
    pipe = Pipeline(as_json=True)
    now = time.monotonic_ns()
    pipe.feed(request(now - EXPIRE_NS - 1_000_000_000, 1))
    pipe.feed(request(now - 5_000_000_000, 2))
    pipe.tick({})
    assert [k[1] for k in pipe.correlator.pending] == [2]
    assert pipe.correlator.expired == 1


def test_state_stays_bounded_on_a_long_run():
    """Half an hour of a process that never reads its replies, with pid churn and extacks:
    what the correlator keeps is what 30 s of it holds."""
    c = Correlator()
    ts = 0
    step = 10_000_000                      # 100 requests/s
    for i in range(180_000):
        ts += step
        c.feed(request(ts, i, sock=i % 977, pid=i // 100))
        if i % 7 == 0:
            c.add_extack(Extack(ts_ns=ts, pid=i // 100, tid=i // 100, sock=0, text="x"))
        if i % 100 == 0:
            c.expire(ts)
    assert len(c.pending) <= EXPIRE_NS // step + 100
    assert len(c.requesters) <= 4096
    assert len(c.extacks) <= EXPIRE_NS // step // 100 + 2
    assert c.expired >= 180_000 - len(c.pending)


def test_decoder_memo_is_bounded():
    dec = Decoder(families=GenlFamilies())
    for i in range(MEMO_MAX * 2 + 10):
        data = struct.pack("=IHHII", 24, 24, 5, i, 0) + struct.pack("!II", i, 0)
        dec(Message(ts_ns=i, pid=1, tid=1, comm="c", protocol=0, direction=REQUEST,
                    data=data, length=24))
    assert len(dec._memo) <= MEMO_MAX


def test_slow_spans_are_bounded_in_time():
    spans = BusyCalls()
    for i in range(5000):
        spans.add(Span(ts_ns=i * 1_000_000_000, dur_ns=1, pid=i, tid=i, comm="x", protocol=0,
                       syscall="sendmsg", lock_wait_ns=0, holder_pid=0, holder_comm=""))
    assert len(spans) <= SPAN_KEEP_NS // 1_000_000_000 + 1


def test_top_keeps_only_the_last_snapshot():
    state = TopState(live_context())
    hist = [0] * 128
    for interval in range(50):
        rows = {pid: {"requests": interval, "errors": 0, "dumps": 0, "dump_intr": 0,
                      "msgs_in": interval, "msgs_out": interval, "bytes_in": 0, "bytes_out": 0,
                      "lat_count": 0, "lat_sum_ns": 0, "lock_wait_ns": 0, "comm": "c",
                      "lat_max_ns": 0, "hist": hist}
                for pid in range(interval * 100, interval * 100 + 100)}   # all new pids
        types = {(pid, 0, 18): interval for pid in rows}
        state.interval(rows, types)
        assert len(state.prev) == 100 and len(state.prev_types) == 100
