"""serve's metrics: what the probes counted, as Prometheus series of bounded number.

The kernel counts per process (top's maps, with failed requests per errno and, on
layers that see a request's start, latency and lock-wait histograms per request
type). Processes come and go and the kernel forgets a process once it has gone, so
the counters are kept here, cumulatively, per label set: each read adds what
changed since the last one.

Label sets are bounded by design. A process is never a label (pids churn): its
command name and where it runs are (comm, container, pod, namespace, netns). At
most `limit` distinct such "who" sets have series of their own; once that many
are live, a new one is counted under who = "other" in every label, until a set
idle for `ttl_s` is dropped (with its series) and makes room. Request types are
names from the decode tables; a type with no name (a process can send any
number) is "other" too. So a metric family has at most
(limit + 1) x protocols x named types (x errnos) series.

prometheus_client renders them (serve's HTTP endpoint); nothing here writes the
exposition format.
"""
import platform
import threading
import time

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily)

from .. import __version__
from ..decode import errno_name
from ..model import protocol_name

WHO_LABELS = ("comm", "container", "pod", "namespace", "netns")
OTHER = "other"
OTHER_WHO = (OTHER,) * len(WHO_LABELS)
# the histograms' bounds: powers of two in ns, 1.024 us to 17.2 s. The kernel's
# buckets are log2 with one extra bit (bpf/emit.bpf.h lat_bucket), so every bound
# falls on a bucket edge and the counts are exact (a value of exactly 2^k ns is
# counted in the next bucket up).
HIST_POWERS = range(10, 35)


def hist_buckets(hist):
    """The kernel's log2 histogram -> [(le in seconds, cumulative count)], +Inf last."""
    out = []
    for k in HIST_POWERS:
        out.append((f"{(1 << k) / 1e9:.9g}", sum(hist[:2 * k])))
    out.append(("+Inf", sum(hist)))
    return out


def who_of(comm, place):
    """A process's label values: its comm and where it runs (Context.describe's dict,
    with the netns inode as netns)."""
    c = place.get("container") or {}
    container = c.get("name") or (c["id"][:12] if c.get("id") else "")
    netns = place.get("netns_name") or (str(place["netns"]) if place.get("netns") else "")
    return (comm or "", container, c.get("pod") or "", c.get("namespace") or "", netns)


class Whos:
    """Which who-sets have series of their own (see the module's text)."""

    def __init__(self, limit, ttl_s):
        self.limit = limit
        self.ttl_s = ttl_s
        self.seen = {}              # who -> when it last counted something
        self.folded = 0             # counts made under "other" for want of room

    def key(self, who, now):
        if who not in self.seen and len(self.seen) >= self.limit:
            self.folded += 1
            who = OTHER_WHO
        self.seen[who] = now
        return who

    def expire(self, now):
        """The who-sets idle for ttl_s: forgotten, their series go."""
        old = [w for w, t in self.seen.items() if now - t >= self.ttl_s and w != OTHER_WHO]
        for w in old:
            del self.seen[w]
        return set(old)

    def live(self):
        return len([w for w in self.seen if w != OTHER_WHO])


class Deltas:
    """What grew since the last read, of cumulative counters keyed by anything; a key
    that went backwards (a pid the kernel forgot and a new process took) counts from 0."""

    def __init__(self):
        self.prev = {}

    def step(self, now):
        out = {}
        for k, v in now.items():
            was = self.prev.get(k, 0)
            d = v - was if v >= was else v
            if d:
                out[k] = d
        self.prev = dict(now)
        return out

    def forget(self, pids, pid_of=lambda k: k[0]):
        self.prev = {k: v for k, v in self.prev.items() if pid_of(k) not in pids}


# (family, help, extra labels before the who labels); counters kept per label set
COUNTERS = {
    "requests": ("Netlink requests to the kernel, by protocol and request type",
                 ("protocol", "type")),
    "request_errors": ("Requests the kernel answered with an error, by errno name",
                       ("protocol", "type", "errno")),
    "dumps": ("Dump requests", ()),
    "dumps_interrupted": ("Dumps the kernel marked NLM_F_DUMP_INTR (the table changed "
                          "during the dump: the reader must retry)", ()),
    "messages": ("Netlink messages sent (out) and received (in)", ("direction",)),
    "bytes": ("Bytes of netlink messages sent (out) and received (in)", ("direction",)),
    "lock_wait_seconds": ("Time netlink calls waited for kernel locks (rtnl and others)", ()),
    "call_errors": ("Netlink socket calls that failed as a whole, by errno name (ENOBUFS: "
                    "the socket's receive queue overran and messages were lost)",
                    ("protocol", "errno")),
    "slow_requests": ("Requests slower than the threshold (nlbpf_slow_threshold_seconds)",
                      ("protocol", "type")),
}
PER_PROCESS = {"dumps": "dumps", "dumps_interrupted": "dump_intr"}


class Metrics:
    """Cumulative counters by label set, fed by serve's loop, read by collect() (the
    HTTP thread): a lock keeps the two apart."""

    def __init__(self, limit=200, ttl_s=900.0, type_name=None, slow_threshold_ns=None,
                 clock=time.monotonic):
        self.whos = Whos(limit, ttl_s)
        self.type_name = type_name or (lambda proto, t: str(t))
        self.clock = clock
        self.lock = threading.Lock()
        self.counts = {name: {} for name in COUNTERS}
        self.top = Deltas()
        self.types = Deltas()
        self.errs = Deltas()
        self.hists = {}             # (proto, type) -> the kernel's cumulative dict
        self.layers = {}            # capture role -> layer name
        self.lost = {}              # capture role -> events lost
        self.not_walked = {}        # capture role -> calls not walked
        self.slow_threshold_ns = slow_threshold_ns     # None: no slow probes
        self.started = time.time()

    # ------------------------------------------------------------- feeding
    def _add(self, family, labels, who, n):
        key = labels + self.whos.key(who, self.clock())
        table = self.counts[family]
        table[key] = table.get(key, 0) + n

    def _type(self, proto, type_):
        name = self.type_name(proto, type_)
        # a name, not a number: an unnamed type is any number a process sent
        return name if name and name[0].isalpha() and not name.startswith("0x") else OTHER

    def add_counters(self, rows, types, errs, whos, hists=None):
        """One read of the kernel's cumulative per-process counters, taken in at once
        (a scrape sees all of it or none).

        rows: {pid: top row}; types: {(pid, proto, type): requests}; errs: {(pid, proto,
        type, errno): n}; whos: {pid: who labels}; hists: {(proto, type): the kernel's
        cumulative histograms}, where the layer has them."""
        with self.lock:
            if hists is not None:
                self.hists = dict(hists)
            flat = {}
            for pid, r in rows.items():
                for k in ("dumps", "dump_intr", "msgs_in", "msgs_out", "bytes_in",
                          "bytes_out", "lock_wait_ns"):
                    flat[(pid, k)] = r[k]
            for (pid, k), n in self.top.step(flat).items():
                who = whos.get(pid) or (rows[pid]["comm"], "", "", "", "")
                if k in ("msgs_in", "msgs_out"):
                    self._add("messages", (k[5:],), who, n)
                elif k in ("bytes_in", "bytes_out"):
                    self._add("bytes", (k[6:],), who, n)
                elif k == "lock_wait_ns":
                    self._add("lock_wait_seconds", (), who, n / 1e9)
                else:
                    self._add("dumps" if k == "dumps" else "dumps_interrupted", (), who, n)
            for (pid, proto, t), n in self.types.step(types).items():
                who = whos.get(pid) or (rows.get(pid, {}).get("comm", ""), "", "", "", "")
                self._add("requests", (protocol_name(proto), self._type(proto, t)), who, n)
            for (pid, proto, t, errno), n in self.errs.step(errs).items():
                who = whos.get(pid) or (rows.get(pid, {}).get("comm", ""), "", "", "", "")
                self._add("request_errors", (protocol_name(proto), self._type(proto, t),
                                             errno_label(errno)), who, n)

    def forget(self, pids):
        """Processes gone, their last counts read: the kernel forgets them, so do the deltas."""
        pids = set(pids)
        with self.lock:
            self.top.forget(pids)
            self.types.forget(pids)
            self.errs.forget(pids)

    def add_call_error(self, proto, errno, who, n=1):
        with self.lock:
            self._add("call_errors", (protocol_name(proto), errno_label(errno)), who, n)

    def add_slow(self, proto, type_, who):
        with self.lock:
            self._add("slow_requests", (protocol_name(proto), self._type(proto, type_)), who, 1)

    def set_health(self, role, layer=None, lost=None, not_walked=None):
        with self.lock:
            if layer is not None:
                self.layers[role] = layer
            if lost is not None:
                self.lost[role] = lost
            if not_walked is not None:
                self.not_walked[role] = not_walked

    def expire(self):
        """Drop the series of who-sets idle for the ttl."""
        with self.lock:
            gone = self.whos.expire(self.clock())
            if not gone:
                return 0
            n = len(WHO_LABELS)
            for table in self.counts.values():
                for key in [k for k in table if k[-n:] in gone]:
                    del table[key]
            return len(gone)

    # ------------------------------------------------------------ collecting
    def collect(self):
        with self.lock:
            yield from self._families()

    def _families(self):
        for name, (doc, extra) in COUNTERS.items():
            fam = CounterMetricFamily(f"nlbpf_{name}", doc, labels=list(extra + WHO_LABELS))
            for key, v in sorted(self.counts[name].items()):
                fam.add_metric(list(key), v)
            yield fam
        lat = HistogramMetricFamily(
            "nlbpf_request_duration_seconds",
            "Time from a request to its final reply, by protocol and request type (kernel "
            "functions and syscall layers: the socket layer sees no request start)",
            labels=["protocol", "type"])
        lock = HistogramMetricFamily(
            "nlbpf_request_lock_wait_seconds",
            "Time a request waited for kernel locks (rtnl and others), by protocol and type",
            labels=["protocol", "type"])
        merged = {}
        for (proto, t), h in self.hists.items():
            key = (protocol_name(proto), self._type(proto, t))
            m = merged.setdefault(key, {"lat_hist": [0] * len(h["lat_hist"]),
                                        "lock_hist": [0] * len(h["lock_hist"]),
                                        "lat_sum_ns": 0, "lock_sum_ns": 0})
            for f in ("lat_hist", "lock_hist"):
                m[f] = [a + b for a, b in zip(m[f], h[f])]
            m["lat_sum_ns"] += h["lat_sum_ns"]
            m["lock_sum_ns"] += h["lock_sum_ns"]
        for key, m in sorted(merged.items()):
            lat.add_metric(list(key), hist_buckets(m["lat_hist"]), m["lat_sum_ns"] / 1e9)
            lock.add_metric(list(key), hist_buckets(m["lock_hist"]), m["lock_sum_ns"] / 1e9)
        yield lat
        yield lock
        lost = CounterMetricFamily("nlbpf_events_lost",
                                   "Events the probes could not hand over (the buffer was "
                                   "full): what they would have counted is missing",
                                   labels=["capture"])
        walked = CounterMetricFamily("nlbpf_calls_not_walked",
                                     "Netlink calls the probes could not walk to the end, or "
                                     "at all (their messages are not counted)",
                                     labels=["capture"])
        for role in sorted(self.layers):
            lost.add_metric([role], self.lost.get(role, 0))
            walked.add_metric([role], self.not_walked.get(role, 0))
        yield lost
        yield walked
        series = GaugeMetricFamily("nlbpf_label_sets",
                                   "Distinct who label sets (comm, container, pod, namespace, "
                                   "netns) with series of their own; the rest count as 'other'",
                                   labels=["state"])
        series.add_metric(["live"], self.whos.live())
        series.add_metric(["limit"], self.whos.limit)
        yield series
        folded = CounterMetricFamily("nlbpf_label_sets_folded",
                                     "Counts made under who='other' for want of room")
        folded.add_metric([], self.whos.folded)
        yield folded
        if self.slow_threshold_ns is not None:
            yield GaugeMetricFamily("nlbpf_slow_threshold_seconds",
                                    "What nlbpf_slow_requests_total counts as slow",
                                    value=self.slow_threshold_ns / 1e9)
        up = GaugeMetricFamily("nlbpf_up", "1 while the probes are attached and counting",
                               value=1 if self.layers else 0)
        yield up
        layer = GaugeMetricFamily("nlbpf_layer", "The hook layer each capture attached",
                                  labels=["capture", "layer"])
        for role, name in sorted(self.layers.items()):
            layer.add_metric([role, name], 1)
        yield layer
        info = InfoMetricFamily("nlbpf_build", "nlbpf's version and where it runs")
        info.add_metric([], {"version": __version__, "python": platform.python_version(),
                             "kernel": platform.release()})
        yield info
        yield GaugeMetricFamily("nlbpf_start_time_seconds", "When serve started (Unix time)",
                                value=self.started)


def errno_label(errno):
    return errno_name(errno) or f"E{errno}"
