"""nlbpf slow: requests slower than a threshold, and why.

Each slow request is split into time spent waiting for kernel locks (from
lock:contention_begin/end, with the mutex owner read at the start of the wait)
and the rest. The other processes that were inside long netlink calls at the
same time are listed too: on a node, those are the usual rtnl holders.
"""
import bisect
import dataclasses
import sys

from ..capture.abi import DEFINES
from ..capture.records import Span
from ..model import protocol_name
from ..output.records import (fmt_us, latency_text, transaction_record, wall_ts, where,
                              where_tag)
from ..output.detail import detail_lines
from .common import Pipeline, capture_args

SPAN_KEEP_NS = 120 * 1_000_000_000
SPANS_MAX = 200_000     # calls kept for "meanwhile": memory stays flat under any load
# after a slow request, the same thread's next ones are shown too if they come this soon
# (the probes hand them over by the same rule, bpf/nlbpf.h)
AFTER_SLOW_NS, AFTER_SLOW_COUNT = DEFINES["AFTER_SLOW_NS"], DEFINES["AFTER_SLOW_COUNT"]
AFTER_MAX = 4096        # threads waiting to show their next request


class BusyCalls:
    """Recent long netlink calls, to name who else was busy during a slow request.

    Finished calls are kept ordered by when they ended, so a request finds the ones
    that overlap it by a bisection, not a scan of all (slow --threshold 0 under load
    makes thousands a second). On the socket layer the task iterator also reports
    calls while they run: those are open until their end comes, and count as busy
    up to any later request's end (the iterator looks again every tenth of the
    threshold, and would have said if one had ended).

    A call's certain span is used, never more: on the socket layer it began between
    two looks (ts_ns and ts_ns + start_slack_ns) and ran at least until the last look
    that saw it (ts_ns + dur_ns)."""

    def __init__(self, keep_ns=SPAN_KEEP_NS, most=SPANS_MAX):
        self.keep_ns = keep_ns
        self.most = most
        self.ends = []          # (end, n) in order; spans[i] goes with ends[i]
        self.spans = []
        self.first = 0          # ends[:first] are expired (dropped in bulk)
        self.keys = set()       # (tid, start) of those kept
        self.open = {}          # tid -> the call it is in now, as last reported
        self._n = 0

    def __len__(self):
        return len(self.spans) - self.first

    def add(self, span):
        self.open.pop(span.tid, None)
        key = (span.tid, span.ts_ns)
        if key in self.keys:
            return              # already closed by its request's end (ended())
        end = span.ts_ns + span.dur_ns
        self._n += 1
        i = bisect.bisect(self.ends, (end, self._n), lo=self.first)
        self.ends.insert(i, (end, self._n))
        self.spans.insert(i, span)
        self.keys.add(key)
        self._expire(end)

    def _expire(self, now):
        first = self.first
        while first < len(self.spans) and (len(self.spans) - first > self.most
                                           or now - self.ends[first][0] > self.keep_ns):
            old = self.spans[first]
            self.keys.discard((old.tid, old.ts_ns))
            first += 1
        self.first = first
        if first > 4096 and first * 2 > len(self.spans):
            del self.ends[:first], self.spans[:first]
            self.first = 0

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
        """Who else was inside netlink calls between start and end: per process, the
        calls and how long they certainly overlapped, longest first."""
        busy = {}
        i = bisect.bisect(self.ends, (start, float("inf")), lo=self.first)
        candidates = self.spans[i:] + list(self.open.values())
        for s in candidates:
            s_start = s.ts_ns + s.start_slack_ns
            s_end = s.ts_ns + s.dur_ns if not s.in_progress else max(end, s.ts_ns + s.dur_ns)
            if s.tid == exclude_tid or s_end <= start or s_start >= end:
                continue
            overlap = min(end, s_end) - max(start, s_start)
            entry = busy.setdefault(s.pid, {"pid": s.pid, "comm": s.comm, "calls": 0,
                                            "overlap_us": 0.0})
            entry["calls"] += 1
            entry["overlap_us"] += round(overlap / 1000, 1)
        return sorted(busy.values(), key=lambda e: -e["overlap_us"])


def holder(pid, comm, work):
    """Who held the mutex waited for longest; work: the function a kworker ran."""
    return {"pid": pid, "comm": comm, "work": work or None}


def holder_text(h):
    """`mutex held by kworker/u8:2 37, running cleanup_net`"""
    text = f"mutex held by {h['comm']} {h['pid']}"
    return text + (f", running {h['work']}" if h.get("work") else "")


def next_record(txn, pipe):
    """One of the same thread's next requests after a slow one (AFTER_SLOW_*), whatever
    it took: iproute2's feature probe is often the one that waited for rtnl, and the
    request the user made comes next."""
    rec = transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context)
    rec["after_slow"] = True
    rec["summary"] += " — after the slow one, the same thread's next"
    return rec


def slow_record(txn, pipe, spans):
    rec = transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context)
    rec["after_slow"] = False
    done = txn.done             # the final reply, or (socket layer) the end of its call
    wait = done.lock_wait_ns if done is not None else 0
    rec["lock_wait_us"] = round(wait / 1000, 1)
    rec["work_us"] = round(max(0, (txn.latency_ns or 0) - wait) / 1000, 1)
    rec["holder"] = (holder(done.lock_holder_pid, done.lock_holder_comm,
                            done.lock_holder_work)
                     if done is not None and done.lock_holder_pid else None)
    # its certain span: from its latest possible start on
    req = txn.request
    end = req.ts_ns + (txn.latency_ns or 0)
    rec["concurrent"] = spans.overlapping(req.ts_ns + req.start_slack_ns, end, req.tid)
    why = f"lock wait {fmt_us(rec['lock_wait_us'])}"
    if rec["holder"]:
        why += f" ({holder_text(rec['holder'])})"
    why += f", other {fmt_us(rec['work_us'])}"
    # the kernel layer sees the handler run (rtnl is taken inside it: its time holds
    # the lock wait too) and a dump being filled
    inside = [f"in its handler {fmt_us(rec['handler_us'])}"] if rec.get("handler_us") else []
    if rec.get("dump_us"):
        inside.append(f"filling the dump {fmt_us(rec['dump_us'])}")
    if inside:
        why += f"; {', '.join(inside)}"
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
    iterator saw it), reported while it runs: a hang shows before it ends. It began
    between two looks (ts_ns and ts_ns + start_slack_ns) and was inside at the last
    (ts_ns + dur_ns): it has run between dur_ns - start_slack_ns and dur_ns."""
    running_min = max(0, span.dur_ns - span.start_slack_ns)
    rec = {
        "ts": wall_ts(span.ts_ns, pipe.offset_ns),
        "pid": span.pid, "tid": span.tid, "comm": span.comm,
        "netns": span.netns, "cgroup": span.cgroup,
        **where(span.netns, span.cgroup, span.pid, pipe.context),
        "protocol": protocol_name(span.protocol),
        "direction": "in_progress",
        "syscall": span.syscall,
        "running_us": round(span.dur_ns / 1000, 1),
        "running_min_us": round(running_min / 1000, 1),
        "start_slack_us": round(span.start_slack_ns / 1000, 1),
        "lock_wait_us": round(span.lock_wait_ns / 1000, 1),
        "holder": (holder(span.holder_pid, span.holder_comm, span.holder_work)
                   if span.holder_pid else None),
    }
    why = f"lock wait {fmt_us(rec['lock_wait_us'])} so far"
    if rec["holder"]:
        why += f" ({holder_text(rec['holder'])})"
    running = latency_text({"latency_us": rec["running_us"],
                            "latency_min_us": rec["running_min_us"]})
    rec["summary"] = (f"{span.comm} {span.pid}{where_tag(rec)} {rec['protocol']} in a netlink "
                      f"{span.syscall} for {running} so far — {why}")
    return rec


def run_slow(threshold_ns, as_json, duration, filters, snaplen, capture, drain=None,
             source=None, show_secrets=False, command=None, verbose=False):
    spans = BusyCalls()
    pipe = None
    told = {}                   # tid -> start of the running call already printed
    after = {}                  # tid -> until when its next request is shown too
    unsure = [0, 0]             # calls that may or may not have crossed it; their widest window

    def on_txn(txn):
        done = txn.done
        tid = txn.request.tid
        spans.ended(tid, done.ts_ns if done is not None else None)
        told.pop(tid, None)
        waiting = after.pop(tid, None)            # [until, how many more]
        if (txn.latency_ns or 0) < threshold_ns:
            if waiting is not None and txn.request.ts_ns <= waiting[0]:
                rec = next_record(txn, pipe)
                pipe.printer(rec, detail=detail_lines(rec["request"]) if verbose else ())
                if waiting[1] > 1:
                    after[tid] = [waiting[0], waiting[1] - 1]
            return
        if txn.latency_min_ns < threshold_ns:
            # its start is known within a window that straddles the threshold: it is
            # not reported (it may not have crossed it), but counted
            unsure[0] += 1
            unsure[1] = max(unsure[1], txn.request.start_slack_ns)
            return
        rec = slow_record(txn, pipe, spans)
        pipe.printer(rec, detail=slow_details(rec) + (detail_lines(rec["request"])
                                                      if verbose else []))
        if done is not None:
            after[tid] = [done.ts_ns + AFTER_SLOW_NS, AFTER_SLOW_COUNT]
            while len(after) > AFTER_MAX:
                after.pop(next(iter(after)))

    def on_other(rec):
        if not isinstance(rec, Span) or not filters.match(rec, request_type=filters.type):
            return
        if not rec.in_progress:
            spans.add(rec)
            return
        spans.watch(rec)
        # printed once it has certainly run past the threshold, not when it may have
        if rec.dur_ns - rec.start_slack_ns >= threshold_ns and told.get(rec.tid) != rec.ts_ns:
            told[rec.tid] = rec.ts_ns
            pipe.printer(running_record(rec, pipe))

    def on_flush(now_ns, everything=False):
        if everything and unsure[0]:
            print(f"nlbpf: {unsure[0]} calls not shown: they ran {fmt_us(threshold_ns / 1000)} "
                  f"or a little less (their start is known within "
                  f"{fmt_us(unsure[1] / 1000)}); --hooks syscall times each exactly",
                  file=sys.stderr, flush=True)

    pipe = Pipeline(as_json, on_txn=on_txn, on_other=on_other, on_flush=on_flush, source=source,
                    show_secrets=show_secrets)
    pipe.run(capture_args("slow", filters, snaplen, capture, slow_ns=threshold_ns), duration,
             drain, command=command)
