"""nlbpf slow: requests slower than a threshold, and why.

Each slow request is split into time spent waiting for kernel locks (from
lock:contention_begin/end, with the mutex owner read at the start of the wait)
and the rest. The other processes that were inside long netlink calls at the
same time are listed too: on a node, those are the usual rtnl holders.
"""
import dataclasses
from collections import deque

from ..capture.records import Span
from ..model import protocol_name
from ..output.records import fmt_us, transaction_record, wall_ts, where, where_tag
from .common import Pipeline, capture_args

SPAN_KEEP_NS = 120 * 1_000_000_000


class Spans:
    """Recent long netlink calls, to name who else was busy during a slow request.
    On the socket layer the task iterator also reports calls while they run: those
    are open until their end comes, and count as busy up to any later request's end."""

    def __init__(self):
        self.spans = deque()
        self.keys = set()       # (tid, start) of those in spans
        self.open = {}          # tid -> the call it is in now, as last reported

    def add(self, span):
        self.open.pop(span.tid, None)
        if (span.tid, span.ts_ns) in self.keys:
            return              # already closed by its request's end (ended())
        self.spans.append(span)
        self.keys.add((span.tid, span.ts_ns))
        while self.spans and span.ts_ns - self.spans[0].ts_ns > SPAN_KEEP_NS:
            old = self.spans.popleft()
            self.keys.discard((old.tid, old.ts_ns))

    def watch(self, span):
        self.open[span.tid] = span

    def ended(self, tid, end_ns):
        """tid's call ended at end_ns (its request completed): no longer open."""
        span = self.open.get(tid)
        if span is not None and end_ns is not None:
            self.add(dataclasses.replace(span, dur_ns=max(span.dur_ns, end_ns - span.ts_ns),
                                         in_progress=False))
        self.open.pop(tid, None)

    def overlapping(self, start, end, exclude_tid):
        busy = {}
        for s in list(self.spans) + list(self.open.values()):
            s_end = s.ts_ns + s.dur_ns if not s.in_progress else end
            if s.tid == exclude_tid or s_end <= start or s.ts_ns >= end:
                continue
            overlap = min(end, s_end) - max(start, s.ts_ns)
            entry = busy.setdefault(s.pid, {"pid": s.pid, "comm": s.comm, "calls": 0,
                                            "overlap_us": 0.0})
            entry["calls"] += 1
            entry["overlap_us"] += round(overlap / 1000, 1)
        return sorted(busy.values(), key=lambda e: -e["overlap_us"])


def slow_record(txn, pipe, spans):
    rec = transaction_record(txn, pipe.decoder, pipe.offset_ns)
    done = txn.done             # the final reply, or (socket layer) the end of its call
    wait = done.lock_wait_ns if done is not None else 0
    rec["lock_wait_us"] = round(wait / 1000, 1)
    rec["work_us"] = round(max(0, (txn.latency_ns or 0) - wait) / 1000, 1)
    rec["holder"] = ({"pid": done.lock_holder_pid, "comm": done.lock_holder_comm}
                     if done is not None and done.lock_holder_pid else None)
    end = txn.request.ts_ns + (txn.latency_ns or 0)
    rec["concurrent"] = spans.overlapping(txn.request.ts_ns, end, txn.request.tid)
    why = f"lock wait {fmt_us(rec['lock_wait_us'])}"
    if rec["holder"]:
        why += f" (mutex held by {rec['holder']['comm']} {rec['holder']['pid']})"
    why += f", other {fmt_us(rec['work_us'])}"
    rec["summary"] += f" — {why}"
    return rec


def slow_details(rec):
    lines = []
    for c in rec["concurrent"][:5]:
        lines.append(f"meanwhile: {c['comm']} {c['pid']} in {c['calls']} netlink call(s) "
                     f"for {fmt_us(c['overlap_us'])}")
    return lines


def running_record(span, pipe):
    """A call still inside the kernel past the threshold (socket layer: the task
    iterator saw it), reported while it runs: a hang shows before it ends."""
    running = span.dur_ns + span.start_slack_ns
    rec = {
        "ts": wall_ts(span.ts_ns, pipe.offset_ns),
        "pid": span.pid, "tid": span.tid, "comm": span.comm,
        "netns": span.netns, "cgroup": span.cgroup,
        **where(span.netns, span.cgroup, span.pid),
        "protocol": protocol_name(span.protocol),
        "direction": "in_progress",
        "syscall": span.syscall,
        "running_us": round(running / 1000, 1),
        "running_min_us": round(span.dur_ns / 1000, 1),
        "lock_wait_us": round(span.lock_wait_ns / 1000, 1),
        "holder": {"pid": span.holder_pid, "comm": span.holder_comm} if span.holder_pid else None,
    }
    why = f"lock wait {fmt_us(rec['lock_wait_us'])} so far"
    if rec["holder"]:
        why += f" (mutex held by {span.holder_comm} {span.holder_pid})"
    rec["summary"] = (f"{span.comm} {span.pid}{where_tag(rec)} {rec['protocol']} in a netlink "
                      f"{span.syscall} for {fmt_us(rec['running_min_us'])} so far — {why}")
    return rec


def run_slow(threshold_ns, as_json, duration, filters, snaplen, buffer):
    spans = Spans()
    pipe = None

    told = set()                # (tid, start) of running calls already printed

    def on_txn(txn):
        done = txn.done
        spans.ended(txn.request.tid, done.ts_ns if done is not None else None)
        if (txn.latency_ns or 0) < threshold_ns:
            return
        rec = slow_record(txn, pipe, spans)
        pipe.printer(rec, detail=slow_details(rec))

    def on_other(rec):
        if not isinstance(rec, Span) or not filters.match(rec, request_type=filters.type):
            return
        if not rec.in_progress:
            spans.add(rec)
            return
        spans.watch(rec)
        if rec.dur_ns + rec.start_slack_ns >= threshold_ns and (rec.tid, rec.ts_ns) not in told:
            told.add((rec.tid, rec.ts_ns))
            pipe.printer(running_record(rec, pipe))

    pipe = Pipeline(as_json, on_txn=on_txn, on_other=on_other)
    pipe.run(capture_args("slow", filters, snaplen, buffer, slow_ns=threshold_ns), duration)
