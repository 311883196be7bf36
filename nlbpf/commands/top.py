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

from ..capture.loader import TOP_COUNTERS, forget_pids, gone_pids, read_top
from ..places import container_label, live_context, place_tag
from ..decode import decode
from ..output.records import fmt_us
from .live import LostReporter, OutputClosed, OutputError, Stopper, announce, write_line
from ..capture.loader import Capture



def bucket_mid_ns(b):
    """Middle of histogram bucket b (log2 with one extra bit, as bpf/emit.bpf.h fills it)."""
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


SUMMED = ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out", "bytes_in",
          "bytes_out", "_lock_ns")


def read_where(capture):
    """{pid: (cgroup id, netns inode)} of each process's latest netlink call (kernel map)."""
    try:
        table = capture.bpf["top_ctx"]
    except KeyError:
        return {}
    return {k.value: (v.cgroup, v.netns) for k, v in table.items()}


def forget_where(capture, pids):
    try:
        table = capture.bpf["top_ctx"]
    except KeyError:
        return
    for pid in pids:
        try:
            del table[table.Key(pid)]
        except KeyError:
            pass


def group_key(row, by):
    """(key, label) that puts a process row in its comm / container / netns group."""
    if by == "comm":
        return ("comm", row["comm"]), row["comm"]
    if by == "netns":
        return row["netns"], row["netns_name"] or str(row["netns"] or "?")
    c = row.get("container")
    if c and (c.get("id") or c.get("name") or c.get("pod_uid")):
        key = c.get("id") or (f"{c.get('runtime')}:{c['name']}" if c.get("name") else c.get("pod_uid"))
        return ("container", key), container_label(c)
    path = row.get("cgroup_path") or f"cgroup {row.get('cgroup')}"
    return ("cgroup", path), path


def group_rows(entries, by):
    """Merge per-process interval entries (with _hist/_types) into one per group. Its
    `comms` are the busiest process names in it; by comm, its `places` the busiest
    containers or netns its processes ran in (`host` for none)."""
    groups = {}
    for e in entries:
        key, label = group_key(e, by)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"group": label, "pids": [], "_comms": {}, "_hist": [0] * len(e["_hist"]),
                               "_types": {}, "_max_ns": None, **{k: 0 for k in SUMMED}}
            if by == "netns":
                g.update(netns=e["netns"], netns_name=e["netns_name"])
            elif by == "comm":
                g["_places"] = {}
            else:
                g.update(container=e["container"], cgroup_path=e["cgroup_path"])
        g["pids"].append(e["pid"])
        g["_comms"][e["comm"]] = g["_comms"].get(e["comm"], 0) + e["msgs_in"] + e["msgs_out"]
        if by == "comm":
            place = place_tag(e, e.get("netns")).strip("[]") or "host"
            g["_places"][place] = g["_places"].get(place, 0) + e["msgs_in"] + e["msgs_out"]
        for k in SUMMED:
            g[k] += e[k]
        g["_hist"] = [a + b for a, b in zip(g["_hist"], e["_hist"])]
        for t, n in e["_types"].items():
            g["_types"][t] = g["_types"].get(t, 0) + n
        if e["_max_ns"] is not None:
            g["_max_ns"] = max(g["_max_ns"] or 0, e["_max_ns"])
    out = []
    for g in groups.values():
        g["pids"].sort()
        g["comms"] = [c for c, _ in sorted(g.pop("_comms").items(), key=lambda kv: -kv[1])][:3]
        if by == "comm":
            g["places"] = [p for p, _ in sorted(g.pop("_places").items(),
                                                key=lambda kv: -kv[1])][:3]
        out.append(g)
    return out


def finish_row(r):
    """The private accumulators of an entry -> its printed fields."""
    hist = r.pop("_hist")
    p50, p99 = percentile_ns(hist, 0.50), percentile_ns(hist, 0.99)
    max_ns = r.pop("_max_ns")
    if max_ns:
        # a bucket's middle can lie past the largest value actually seen
        p50, p99 = (min(p, max_ns) if p else p for p in (p50, p99))
    top_types = sorted(r.pop("_types").items(), key=lambda kv: -kv[1])[:3]
    r.update({
        "p50_us": round(p50 / 1000, 1) if p50 else None,
        "p99_us": round(p99 / 1000, 1) if p99 else None,
        "max_us": round(max_ns / 1000, 1) if max_ns is not None else None,
        "lock_wait_us": round(r.pop("_lock_ns") / 1000, 1),
        "top_types": [{"type": type_name(p, t), "count": n} for (p, t), n in top_types],
    })
    return r


class TopState:
    """Turns cumulative kernel counters into per-interval rows."""

    def __init__(self, context, by="process"):
        """context: where rows are described (nlbpf/places.py): the live machine's, or
        a capture file's."""
        self.prev = {}
        self.prev_types = {}
        self.by = by
        self.context = context

    def interval(self, rows, types, where=None):
        """Rows of this interval: per process, or per container/netns with --by."""
        ctx = self.context
        where = where or {}
        entries = []
        for pid, row in rows.items():
            before = self.prev.get(pid)
            delta = {k: row[k] - (before[k] if before else 0) for k in TOP_COUNTERS}
            hist = [a - (before["hist"][i] if before else 0) for i, a in enumerate(row["hist"])]
            if not any(delta.values()):
                continue
            counts = {}
            for (tpid, proto, t), n in types.items():
                if tpid == pid:
                    d = n - self.prev_types.get((tpid, proto, t), 0)
                    if d:
                        counts[(proto, t)] = d
            cgroup, netns = where.get(pid, (0, 0))
            entries.append({
                "pid": pid, "comm": row["comm"],
                "netns": netns, "cgroup": cgroup, **ctx.describe(netns, cgroup, pid),
                "requests": delta["requests"], "errors": delta["errors"],
                "dumps": delta["dumps"], "dump_intr": delta["dump_intr"],
                "msgs_in": delta["msgs_in"], "msgs_out": delta["msgs_out"],
                "bytes_in": delta["bytes_in"], "bytes_out": delta["bytes_out"],
                "_hist": hist, "_types": counts, "_lock_ns": delta["lock_wait_ns"],
                # the interval's largest (read_top): MAX is per interval, as P99 is
                "_max_ns": (row["lat_max_ns"] or None) if delta["lat_count"] else None,
            })
        self.prev = rows
        self.prev_types = types
        if self.by != "process":
            entries = group_rows(entries, self.by)
        out = [finish_row(e) for e in entries]
        # a process row has a pid (0 where no process is known: an nlmon capture's
        # notification), a group row its pids
        out.sort(key=lambda r: (-(r["msgs_in"] + r["msgs_out"]),
                                r["pid"] if "pid" in r else r["pids"][0]))
        return out

    def gone(self):
        return [pid for pid in self.prev if not os.path.exists(f"/proc/{pid}")]


def _who(r, by):
    """The leading columns of a row: PID COMM WHERE, or GROUP PIDS COMMS."""
    if by == "process":
        where = place_tag(r, r.get("netns")) if "netns_name" in r else ""
        return [r["pid"], r["comm"], where.strip("[]") or "-"]
    pids = r["pids"]
    if by == "comm":
        return [r["group"], len(pids), ",".join(r["places"])]
    return [r["group"], len(pids), ",".join(r["comms"])]


def not_walked(stats):
    """Netlink calls the probes could not walk to the end, or at all (live.Outcome)."""
    return stats.get("walk_truncated", 0) + stats.get("unseen", 0)


def render_table(rows, limit, interval_s, lost_new, lost_total, by="process", walked_new=0,
                 walked_total=0):
    first = {"process": ["PID", "COMM", "WHERE"], "comm": ["COMM", "PIDS", "WHERE"],
             "container": ["CONTAINER", "PIDS", "COMMS"],
             "netns": ["NETNS", "PIDS", "COMMS"]}[by]
    headers = first + ["REQ", "ERR", "DUMP", "INTR", "MSG IN", "MSG OUT", "BYTES IN",
                       "BYTES OUT", "P50", "P99", "MAX", "LOCK", "TOP TYPES"]
    table = [_who(r, by) + [r["requests"], r["errors"], r["dumps"], r["dump_intr"],
              r["msgs_in"], r["msgs_out"], r["bytes_in"], r["bytes_out"], fmt_us(r["p50_us"]),
              fmt_us(r["p99_us"]), fmt_us(r["max_us"]), fmt_us(r["lock_wait_us"]),
              " ".join(f"{t['type']}:{t['count']}" for t in r["top_types"])]
             for r in rows[:limit]]
    stamp = time.strftime("%H:%M:%S")
    what = {"process": "processes", "comm": "process names", "container": "containers/cgroups",
            "netns": "netns"}[by]
    head = (f"{stamp}  {len(rows)} {what} active in {interval_s:.1f}s  "
            f"lost events: {lost_new} (total {lost_total})  "
            f"calls not walked: {walked_new} (total {walked_total})")
    return head + "\n" + (tabulate(table, headers=headers, tablefmt="plain") if table
                          else "(no netlink activity)")


def run_top(as_json, duration, filters, snaplen, capture, interval, count, rows, by="process",
            drain=None, show_secrets=False):
    # (drain: counted in the kernel, top has no events to show once stopped)
    probes = Capture(mode="top", filters=filters, snaplen=snaplen, settings=capture)
    state = TopState(live_context(), by=by)
    tty = sys.stdout.isatty() and not as_json
    stopper = Stopper().__enter__()     # until the probes are detached (live.Stopper)
    try:
        probes.start()
        announce(probes)
        lost = LostReporter(probes)
        started = time.monotonic()
        shown = 0
        with stopper:
            closed = None
            try:
                last = time.monotonic()
                while not stopper.stop:
                    wake = last + interval
                    while not stopper.stop and time.monotonic() < wake:
                        time.sleep(min(0.1, max(0.0, wake - time.monotonic())))
                    now = time.monotonic()
                    before = lost.reported["lost"]
                    walked_before = not_walked(lost.reported)
                    stats = lost.check()
                    # processes already gone before this read have their final counts in it
                    # and are forgotten once it is shown (checked after the read, a process
                    # exiting in between would lose what it did after the read, unseen)
                    gone = gone_pids(probes)
                    data = state.interval(*read_top(probes), where=read_where(probes))
                    span = now - last
                    last = now
                    if as_json:
                        write_line(json.dumps({"ts": round(time.time(), 6),
                                               "interval_s": round(span, 3), "by": by,
                                               "lost": stats["lost"] - before,
                                               "total_lost": stats["lost"],
                                               "not_walked": not_walked(stats) - walked_before,
                                               "total_not_walked": not_walked(stats),
                                               "rows": data}))
                    else:
                        if tty:
                            sys.stdout.write("\033[H\033[2J")
                        write_line(render_table(data, rows, span, stats["lost"] - before,
                                                stats["lost"], by=by,
                                                walked_new=not_walked(stats) - walked_before,
                                                walked_total=not_walked(stats)))
                        if not tty:
                            write_line("")
                    forget_pids(probes, gone)
                    forget_where(probes, gone)
                    shown += 1
                    if count and shown >= count:
                        break
                    if duration and now - started >= duration:
                        break
            except (OutputClosed, OutputError) as e:
                closed = e      # `nlbpf top --json | head`: the closing line still comes
        probes.detach()
        stats = lost.check()
        # counted in the kernel: no event crosses to userspace, so none is lost; calls the
        # probes could not walk are counted
        print(f"nlbpf: {shown} refreshes; counted in the kernel: {stats['lost']} lost, "
              f"{not_walked(stats)} not walked", file=sys.stderr, flush=True)
        if closed:
            raise closed
    finally:
        probes.close()
        stopper.__exit__()
