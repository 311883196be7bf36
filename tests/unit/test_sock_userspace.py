"""The socket-tracepoint layer's userspace side: which layer a command gets, what
a request without a known start gives, calls that end without a reply, the
BTF program loader's errors, and top's per-CPU slots read back."""
import ctypes as ct
import errno
import os
from types import SimpleNamespace

import pytest

from nlbpf.capture import btfprog, layers
from nlbpf.places import live_context
from nlbpf.capture.btf import BTF_PATH, BTF, SOCK_OFFSETS, probe_offsets
from nlbpf.capture.loader import LAT_BUCKETS, TOP_COUNTERS, gone_pids, read_top, top_pids
from nlbpf.capture.records import Span
from nlbpf.commands.slow import BusyCalls, running_record
from nlbpf.correlate import Correlator
from nlbpf.errors import NlbpfError
from nlbpf.model import REPLY, REQUEST, CallEnd, Message, Transaction
from nlbpf.output.records import Decoder, latency_text, transaction_record

MS = 1_000_000


# ------------------------------------------------------------- layer choice

@pytest.mark.parametrize("mode, choice, slow_ns, order", [
    ("errors", "auto", None, ["sock", "kernel", "syscall"]),
    ("top", "auto", None, ["kernel", "sock", "syscall"]),
    ("slow", "auto", 500 * MS, ["kernel", "sock", "syscall"]),
    ("slow", "auto", 99 * MS, ["kernel", "syscall"]),        # too fine for 10 ms looks
    ("trace", "auto", None, ["kernel", "syscall"]),          # every request's start
    ("trace", "sock", None, ["sock"]),                       # asked for: tried, and refused
    ("errors", "syscall", None, ["syscall"]),
])
def test_layer_order(mode, choice, slow_ns, order):
    assert layers.layer_order(mode, choice, slow_ns) == order


@pytest.mark.parametrize("slow_ns, period", [(500 * MS, 50 * MS), (100 * MS, 10 * MS),
                                             (10_000 * MS, 100 * MS), (None, 10 * MS)])
def test_slow_looks_at_threads_ten_times_per_threshold_within_bounds(slow_ns, period):
    assert layers.poll_period_ns(slow_ns) == period


def test_socket_layer_says_why_it_cannot_serve(monkeypatch):
    assert "does not serve `trace`" in layers.sock_unavailable("trace")
    monkeypatch.setattr(layers.environment, "tracepoint_exists", lambda cat, ev: False)
    monkeypatch.setattr(layers.os, "uname", lambda: SimpleNamespace(machine="x86_64"))
    assert layers.sock_unavailable("top") == "no sock:sk_data_ready tracepoint (Linux 6.7+)"
    assert "sock:sock_send_length" in layers.sock_unavailable("slow")
    monkeypatch.setattr(layers.os, "uname", lambda: SimpleNamespace(machine="aarch64"))
    assert "x86-64 only" in layers.sock_unavailable("errors")
    monkeypatch.setattr(layers.os, "uname", lambda: SimpleNamespace(machine="x86_64"))
    monkeypatch.setattr(layers.environment, "tracepoint_exists", lambda cat, ev: True)
    assert layers.sock_unavailable("errors") is None
    assert "task storage" in layers.sock_unavailable("errors", call_state="hash")


@pytest.mark.skipif(not os.path.exists(BTF_PATH), reason="kernel without BTF")
def test_what_the_socket_layer_reads_is_in_this_kernels_btf():
    btf = BTF.load()
    offs = probe_offsets(btf, SOCK_OFFSETS)
    assert offs["OFF_REGS_ORIG_AX"] == 120 and offs["OFF_SKB_PREV"] == 8
    have = set(btf.attach_ids)
    assert "bpf_iter_task" in have
    if os.path.isdir("/sys/kernel/tracing/events/sock/sk_data_ready"):
        assert {"btf_trace_sk_data_ready", "btf_trace_sock_send_length"} <= have


# ------------------------------------------------------------ the BTF loader

def test_a_refused_program_says_what_the_verifier_said(monkeypatch):
    calls = []

    def fake_bpf(cmd, attr):
        calls.append(attr)
        if len(calls) == 1:
            raise OSError(errno.EACCES, "Permission denied")
        # the retry asks for the log: fill it as the kernel would
        log_at = int.from_bytes(bytes(attr[32:40]), "little")
        text = b"0: (b7) r0 = 0\nR0 unbounded memory access\nprocessed 3 insns (limit 1000000)\n"
        ct.memmove(log_at, text, len(text))
        raise OSError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(btfprog, "_bpf", fake_bpf)
    with pytest.raises(NlbpfError) as e:
        btfprog.load(b"\0" * 16, "sock_ready", btfprog.BPF_TRACE_RAW_TP, 42)
    assert str(e.value) == "cannot load sock_ready: Permission denied (R0 unbounded memory access)"
    first = calls[0]
    assert int.from_bytes(bytes(first[0:4]), "little") == btfprog.BPF_PROG_TYPE_TRACING
    assert int.from_bytes(bytes(first[4:8]), "little") == 2            # instructions
    assert bytes(first[48:58]) == b"sock_ready"
    assert int.from_bytes(bytes(first[68:72]), "little") == btfprog.BPF_TRACE_RAW_TP
    assert int.from_bytes(bytes(first[108:112]), "little") == 42


def test_a_kernel_that_refuses_tracing_programs_is_named(monkeypatch):
    def refuse(cmd, attr):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(btfprog, "_bpf", refuse)
    with pytest.raises(NlbpfError, match="refuses to load BTF-typed tracing programs"):
        btfprog.load(b"\0" * 8, "slow_poll", btfprog.BPF_TRACE_ITER, 7)


def test_programs_closed_together(monkeypatch):
    r, w = os.pipe()
    progs = btfprog.Programs()
    progs.keep(r)
    progs.keep(w)
    progs.close()
    for fd in (r, w):
        with pytest.raises(OSError):
            os.fstat(fd)
    progs.close()                       # twice is fine


# ------------------------------------------- requests rebuilt, calls that end

def msg(direction, data, ts=100, **kw):
    base = dict(pid=7, tid=7, comm="ip", protocol=0, netns=1, sock=0xff00, portid=7)
    base.update(kw)
    return Message(ts_ns=ts, direction=direction, data=data, length=len(data), **base)


def header(type_, flags, seq, payload=b"", length=None):
    length = 16 + len(payload) if length is None else length
    return (length.to_bytes(4, "little") + type_.to_bytes(2, "little")
            + flags.to_bytes(2, "little") + seq.to_bytes(4, "little") + bytes(4) + payload)


DELROUTE = header(25, 5, 9, bytes([2, 24, 0, 0, 254, 0, 0, 0]) + bytes(4))
ESRCH = header(2, 0, 9, (-3).to_bytes(4, "little", signed=True) + DELROUTE[:16])


def test_a_request_rebuilt_from_an_echo_has_no_latency():
    c = Correlator()
    c.feed(msg(REQUEST, DELROUTE, ts=500, start_known=False))
    txn, done = c.feed(msg(REPLY, ESRCH, ts=500))
    assert done and txn.errno == 3
    assert txn.latency_ns is None and txn.latency_min_ns is None
    rec = transaction_record(txn, Decoder(), 0, live_context())
    assert rec["latency_us"] is None and "latency_min_us" not in rec
    assert rec["summary"].endswith("→ ESRCH (No such process)")


def test_a_start_known_within_a_window_gives_a_range():
    c = Correlator()
    c.feed(msg(REQUEST, DELROUTE, ts=1_000 * MS, start_slack_ns=20 * MS))
    txn, done = c.feed(msg(REPLY, ESRCH, ts=3_000 * MS, lock_wait_ns=1_900 * MS))
    assert txn.latency_ns == 2_000 * MS and txn.latency_min_ns == 1_980 * MS
    rec = transaction_record(txn, Decoder(), 0, live_context())
    assert rec["latency_us"] == 2_000_000 and rec["latency_min_us"] == 1_980_000
    assert rec["summary"].endswith(" 1.98s–2.00s")
    assert latency_text({"latency_us": 455.0}) == "455us"
    assert latency_text({"latency_us": None}) == ""


def test_a_call_that_ended_with_no_reply_completes_its_request():
    c = Correlator()
    dump = header(26, 0x301, 4, bytes(12))
    c.feed(msg(REQUEST, dump, ts=10 * MS, start_slack_ns=MS))
    txn = c.end_call(CallEnd(ts_ns=900 * MS, pid=7, tid=7, sock=0xff00, seq=4,
                             lock_wait_ns=800 * MS, lock_holder_pid=9, lock_holder_comm="ip"))
    assert txn is not None and txn.final is None and txn.done is txn.end
    assert txn.errno == 0 and txn.latency_ns == 890 * MS
    rec = transaction_record(txn, Decoder(), 0, live_context())
    assert "→ sent, no reply queued yet" in rec["summary"] and rec["reply"] is None
    assert not c.pending
    assert c.end_call(CallEnd(ts_ns=1, pid=7, tid=7, sock=0xff00, seq=4)) is None


def test_convert_makes_a_call_end_of_its_marker():
    from nlbpf.capture.records import EV_MSG, EVF_CALL_END, EVF_FINAL, convert
    ev = SimpleNamespace(kind=EV_MSG, flags=EVF_FINAL | EVF_CALL_END, ts_ns=5, pid=1, tid=2,
                         sk=3, nl_seq=4, lock_wait_ns=6, holder_pid=8, holder_comm=b"ip\0")
    assert convert(ev) == CallEnd(ts_ns=5, pid=1, tid=2, sock=3, seq=4, lock_wait_ns=6,
                                  lock_holder_pid=8, lock_holder_comm="ip")


# ------------------------------------------------------------ slow's spans

def span(tid, ts, dur, running=False, slack=0, **kw):
    return Span(ts_ns=ts, dur_ns=dur, pid=tid, tid=tid, comm="ip", protocol=0,
                syscall="sendmsg", lock_wait_ns=kw.get("wait", 0),
                holder_pid=kw.get("holder", 0), holder_comm="ip" if kw.get("holder") else "",
                start_slack_ns=slack, in_progress=running)


def test_calls_still_running_count_as_busy_until_they_end():
    s = BusyCalls()
    s.watch(span(1, 100 * MS, 300 * MS, running=True))
    busy = s.overlapping(200 * MS, 5_000 * MS, exclude_tid=2)
    assert [b["pid"] for b in busy] == [1] and busy[0]["overlap_us"] == 4_800_000
    s.ended(1, 900 * MS)                # its request's end closes it
    assert not s.open
    assert s.overlapping(200 * MS, 5_000 * MS, 2)[0]["overlap_us"] == 700_000
    s.add(span(1, 100 * MS, 700 * MS))  # the iterator's own word on it comes later: once
    assert len(s) == 1
    assert s.overlapping(200 * MS, 5_000 * MS, exclude_tid=1) == []


def test_a_call_still_running_is_reported_with_its_wait_so_far():
    """The iterator saw it first 20 ms after the look before (so it began in those 20 ms)
    and last 480 ms after that look: it has run 460 to 480 ms."""
    pipe = SimpleNamespace(offset_ns=0, context=live_context())
    rec = running_record(span(5, 100 * MS, 480 * MS, running=True, slack=20 * MS,
                              wait=450 * MS, holder=9), pipe)
    assert rec["direction"] == "in_progress"
    assert rec["running_us"] == 480_000 and rec["running_min_us"] == 460_000
    assert rec["start_slack_us"] == 20_000
    assert rec["holder"] == {"pid": 9, "comm": "ip", "work": None}
    assert "in a netlink sendmsg for 460.00ms–480.00ms so far" in rec["summary"]
    assert "lock wait 450.00ms so far (mutex held by ip 9)" in rec["summary"]


# ----------------------------------------------------------- top's slots

class FakeTable:
    """items() and keys() as bcc's tables give them (key objects with .value/fields)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def items(self):
        return list(self.pairs)

    def keys(self):
        return [k for k, _ in self.pairs]


class PerCpu:
    """A per-CPU array of one entry: every CPU's value for key 0."""

    def __init__(self, values):
        self.values = values

    def __getitem__(self, key):
        assert key.value == 0
        return self.values


class Epoch:
    """top_epoch: a one-entry array the reader advances at each read."""

    def __init__(self):
        self.value = 0

    def Leaf(self, value):
        return SimpleNamespace(value=value)

    def __getitem__(self, key):
        assert key.value == 0
        return SimpleNamespace(value=self.value)

    def __setitem__(self, key, leaf):
        assert key.value == 0
        self.value = leaf.value


def slot(pid, **counts):
    base = {name: 0 for name in ("requests", "errors", "dumps", "dump_intr", "msgs_in",
                                 "msgs_out", "bytes_in", "bytes_out", "lock_wait_ns",
                                 "type_count", "type", "proto")}
    base.update(counts)
    return SimpleNamespace(pid=pid, comm=b"python\0", **base)


def test_top_adds_what_each_cpus_slot_holds_to_the_maps():
    row = SimpleNamespace(comm=b"ip\0", lat_max_ns=500, lat_max_epoch=0,
                          lat_hist=[0] * LAT_BUCKETS, **{name: 1 for name in TOP_COUNTERS})
    key = SimpleNamespace(value=7)
    tkey = SimpleNamespace(pid=7, proto=0, type=18)
    slots = [slot(7, requests=4, msgs_in=8, type_count=4, type=18),
             slot(9, requests=2, bytes_out=64, type_count=2, type=26), slot(0)]
    capture = SimpleNamespace(layer="sock", bpf={
        "top": FakeTable([(key, row)]), "top_types": FakeTable([(tkey, SimpleNamespace(value=1))]),
        "top_slots": PerCpu(slots), "top_epoch": Epoch()})
    rows, types = read_top(capture)
    assert rows[7]["requests"] == 5 and rows[7]["msgs_in"] == 9 and rows[7]["comm"] == "ip"
    # the maximum is this interval's; the read opened the next interval
    assert rows[7]["lat_max_ns"] == 500 and capture.bpf["top_epoch"].value == 1
    assert read_top(capture)[0][7]["lat_max_ns"] == 0     # set in an interval now over
    assert rows[9]["requests"] == 2 and rows[9]["bytes_out"] == 64 and rows[9]["comm"] == "python"
    assert rows[9]["hist"] == [0] * LAT_BUCKETS
    assert types == {(7, 0, 18): 5, (9, 0, 26): 2}
    assert sorted(top_pids(capture)) == [7, 9]


def test_a_gone_process_is_forgotten_only_once_no_slot_holds_it(monkeypatch):
    """Forgetting its map entry while a CPU's slot still held it made top and serve read
    the slot's counts again as a new process's (serve counted an `ip` run twice)."""
    key = SimpleNamespace(value=7)
    row = SimpleNamespace(comm=b"ip\0", lat_max_ns=0, lat_hist=[0] * LAT_BUCKETS,
                          **{name: 1 for name in TOP_COUNTERS})
    slots = [slot(9, requests=2), slot(0)]
    capture = SimpleNamespace(layer="sock", bpf={"top": FakeTable([(key, row)]),
                                                 "top_slots": PerCpu(slots)})
    monkeypatch.setattr("nlbpf.capture.loader.os.path.exists", lambda path: False)
    assert gone_pids(capture) == [7]            # 9 is gone too, but its slot holds it
    # another process took the slot: 9's counts went to the map, and 11 is held now
    slots[0] = slot(11, requests=1)
    capture.bpf["top"] = FakeTable([(key, row), (SimpleNamespace(value=9), row)])
    assert sorted(gone_pids(capture)) == [7, 9]


def test_transaction_latency_ends_at_the_final_reply_or_the_call_end():
    req = msg(REQUEST, DELROUTE, ts=10)
    assert Transaction(request=req).latency_ns is None
    assert Transaction(request=req, final=msg(REPLY, ESRCH, ts=30)).latency_ns == 20
    end = CallEnd(ts_ns=50, pid=7, tid=7, sock=1, seq=9)
    assert Transaction(request=req, end=end).latency_ns == 40


def test_doctor_names_each_commands_layer():
    from nlbpf.commands.doctor import command_layers
    here = {"fentry": False, "kprobe": False, "sock": True, "syscall": True}
    assert command_layers(here) == {"trace": "syscall", "errors": "sock", "top": "sock",
                                    "slow": "sock"}
    fentry = dict(here, fentry=True)
    assert command_layers(fentry) == {"trace": "kernel (fentry)", "errors": "sock",
                                      "top": "kernel (fentry)", "slow": "kernel (fentry)"}
    old = dict(here, sock=False)
    assert set(command_layers(old).values()) == {"syscall"}
