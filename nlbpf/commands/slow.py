"""nlbpf slow: requests slower than a threshold, and why.

Each slow request is split into time spent waiting for kernel locks (from
lock:contention_begin/end, with the mutex owner read at the start of the wait)
and the rest. The other processes that were inside long netlink calls at the
same time are listed too: on a node, those are the usual rtnl holders.
"""
from collections import deque

from ..capture.records import Span
from ..output.records import fmt_us, transaction_record
from .common import Pipeline, capture_args

SPAN_KEEP_NS = 120 * 1_000_000_000


class Spans:
    """Recent long netlink calls, to name who else was busy during a slow request."""

    def __init__(self):
        self.spans = deque()

    def add(self, span):
        self.spans.append(span)
        while self.spans and span.ts_ns - self.spans[0].ts_ns > SPAN_KEEP_NS:
            self.spans.popleft()

    def overlapping(self, start, end, exclude_tid):
        busy = {}
        for s in self.spans:
            s_end = s.ts_ns + s.dur_ns
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
    final = txn.final
    wait = final.lock_wait_ns if final is not None else 0
    rec["lock_wait_us"] = round(wait / 1000, 1)
    rec["work_us"] = round(max(0, (txn.latency_ns or 0) - wait) / 1000, 1)
    rec["holder"] = ({"pid": final.lock_holder_pid, "comm": final.lock_holder_comm}
                     if final is not None and final.lock_holder_pid else None)
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


def run_slow(threshold_ns, as_json, duration, filters, snaplen, buffer):
    spans = Spans()
    pipe = None

    def on_txn(txn):
        if (txn.latency_ns or 0) < threshold_ns:
            return
        rec = slow_record(txn, pipe, spans)
        pipe.printer(rec, detail=slow_details(rec))

    def on_other(rec):
        if isinstance(rec, Span):
            spans.add(rec)

    pipe = Pipeline(as_json, on_txn=on_txn, on_other=on_other)
    pipe.run(capture_args("slow", filters, snaplen, buffer, slow_ns=threshold_ns), duration)
