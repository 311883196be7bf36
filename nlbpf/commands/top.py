"""nlbpf top: per-process netlink activity, counted in the kernel.

The probes keep cumulative counters and a latency histogram per process; each
refresh reads them and shows the difference since the last one, so nothing is
lost between reads and no event crosses to userspace for counting.
"""
import json
import os
import sys
import time

from tabulate import tabulate

from ..capture.loader import TOP_COUNTERS, forget_pids, read_top
from ..decode import decode
from ..output.records import fmt_us
from ..session import Stopper, LostReporter, TRACING_LINE, write_line
from ..capture.loader import Capture

LAT_BUCKETS = 128


def bucket_mid_ns(b):
    """Middle of histogram bucket b (log2 with one extra bit, as bpf/nlbpf.bpf.c fills it)."""
    lg, half = divmod(b, 2)
    if lg == 0:
        return 1
    low = (1 << lg) + half * (1 << (lg - 1))
    return low + (1 << (lg - 1)) // 2


def percentile_ns(hist, q):
    total = sum(hist)
    if not total:
        return None
    want = q * total
    seen = 0
    for b, n in enumerate(hist):
        seen += n
        if seen >= want:
            return bucket_mid_ns(b)
    return bucket_mid_ns(len(hist) - 1)


def type_name(proto, type_):
    header = (16).to_bytes(4, "little") + type_.to_bytes(2, "little") + bytes(10)
    return decode(proto, header).type_name


class TopState:
    """Turns cumulative kernel counters into per-interval rows."""

    def __init__(self):
        self.prev = {}
        self.prev_types = {}

    def interval(self, rows, types):
        out = []
        for pid, row in rows.items():
            before = self.prev.get(pid)
            delta = {k: row[k] - (before[k] if before else 0) for k in TOP_COUNTERS}
            hist = [a - (before["hist"][i] if before else 0) for i, a in enumerate(row["hist"])]
            if not any(delta.values()):
                continue
            p50, p99 = percentile_ns(hist, 0.50), percentile_ns(hist, 0.99)
            counts = {}
            for (tpid, proto, t), n in types.items():
                if tpid == pid:
                    d = n - self.prev_types.get((tpid, proto, t), 0)
                    if d:
                        counts[(proto, t)] = d
            top_types = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            out.append({
                "pid": pid, "comm": row["comm"],
                "requests": delta["requests"], "errors": delta["errors"],
                "dumps": delta["dumps"], "dump_intr": delta["dump_intr"],
                "msgs_in": delta["msgs_in"], "msgs_out": delta["msgs_out"],
                "bytes_in": delta["bytes_in"], "bytes_out": delta["bytes_out"],
                "p50_us": round(p50 / 1000, 1) if p50 else None,
                "p99_us": round(p99 / 1000, 1) if p99 else None,
                "max_us": round(row["lat_max_ns"] / 1000, 1) if delta["lat_count"] else None,
                "lock_wait_us": round(delta["lock_wait_ns"] / 1000, 1),
                "top_types": [{"type": type_name(p, t), "count": n} for (p, t), n in top_types],
            })
        self.prev = rows
        self.prev_types = types
        out.sort(key=lambda r: (-(r["msgs_in"] + r["msgs_out"]), r["pid"]))
        return out

    def gone(self):
        return [pid for pid in self.prev if not os.path.exists(f"/proc/{pid}")]


def render_table(rows, limit, interval_s, lost_new, lost_total):
    headers = ["PID", "COMM", "REQ", "ERR", "DUMP", "INTR", "MSG IN", "MSG OUT", "BYTES IN",
               "BYTES OUT", "P50", "P99", "MAX", "LOCK", "TOP TYPES"]
    table = [[r["pid"], r["comm"], r["requests"], r["errors"], r["dumps"], r["dump_intr"],
              r["msgs_in"], r["msgs_out"], r["bytes_in"], r["bytes_out"], fmt_us(r["p50_us"]),
              fmt_us(r["p99_us"]), fmt_us(r["max_us"]), fmt_us(r["lock_wait_us"]),
              " ".join(f"{t['type']}:{t['count']}" for t in r["top_types"])]
             for r in rows[:limit]]
    stamp = time.strftime("%H:%M:%S")
    head = (f"{stamp}  {len(rows)} processes active in {interval_s:.1f}s  "
            f"lost events: {lost_new} (total {lost_total})")
    return head + "\n" + (tabulate(table, headers=headers, tablefmt="plain") if table
                          else "(no netlink activity)")


def run_top(as_json, duration, filters, snaplen, buffer, interval, count, rows):
    capture = Capture(mode="top", filters=filters, snaplen=snaplen, buffer=buffer)
    state = TopState()
    tty = sys.stdout.isatty() and not as_json
    try:
        capture.start()
        print(TRACING_LINE, file=sys.stderr, flush=True)
        lost = LostReporter(capture)
        started = time.monotonic()
        shown = 0
        with Stopper() as stopper:
            last = time.monotonic()
            while not stopper.stop:
                wake = last + interval
                while not stopper.stop and time.monotonic() < wake:
                    time.sleep(min(0.1, max(0.0, wake - time.monotonic())))
                now = time.monotonic()
                before = lost.reported["lost"]
                stats = lost.check()
                data = state.interval(*read_top(capture))
                span = now - last
                last = now
                if as_json:
                    write_line(json.dumps({"ts": round(time.time(), 6), "interval_s": round(span, 3),
                                           "lost": stats["lost"] - before,
                                           "total_lost": stats["lost"], "rows": data}))
                else:
                    if tty:
                        sys.stdout.write("\033[H\033[2J")
                    write_line(render_table(data, rows, span, stats["lost"] - before, stats["lost"]))
                    if not tty:
                        write_line("")
                forget_pids(capture, state.gone())
                shown += 1
                if count and shown >= count:
                    break
                if duration and now - started >= duration:
                    break
    finally:
        capture.close()
