"""serve's metrics (nlbpf/output/metrics.py): exact histograms, bounded label sets,
counters that survive processes coming and going, rendered by prometheus_client."""
import random

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nlbpf.capture.abi import LAT_BUCKETS
from nlbpf.output.metrics import HIST_POWERS, OTHER, Metrics, hist_buckets, who_of
from nlbpf.commands.serve import parse_listen
from nlbpf.errors import NlbpfError

import pytest


def lat_bucket(v):
    """bpf/emit.bpf.h's lat_bucket, in Python."""
    lg = v.bit_length() - 1 if v > 1 else 0
    half = (v >> (lg - 1)) & 1 if lg else 0
    return min(lg * 2 + half, LAT_BUCKETS - 1)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def row(comm, **counts):
    base = {k: 0 for k in ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out",
                           "bytes_in", "bytes_out", "lock_wait_ns")}
    base.update(counts, comm=comm)
    return base


def scrape(metrics):
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return text, samples


def named(proto, t):
    return {24: "RTM_NEWROUTE", 25: "RTM_DELROUTE", 18: "RTM_GETLINK"}.get(t, f"0x{t:x}")


def test_histogram_bounds_fall_on_the_kernels_bucket_edges():
    rng = random.Random(7)
    values = [rng.randrange(0, 1 << 36) for _ in range(5000)] + [1 << k for k in HIST_POWERS]
    hist = [0] * LAT_BUCKETS
    for v in values:
        hist[lat_bucket(v)] += 1
    buckets = hist_buckets(hist)
    assert buckets[-1] == ("+Inf", len(values))
    for (le, count), k in zip(buckets, HIST_POWERS):
        assert float(le) == pytest.approx((1 << k) / 1e9)
        assert count == sum(1 for v in values if v < (1 << k))


def test_counters_accumulate_across_reads_and_processes_that_go():
    clock = Clock()
    m = Metrics(limit=10, ttl_s=100, type_name=named, clock=clock)
    who = {7: ("ip", "", "", "", "ns1")}
    m.add_counters({7: row("ip", msgs_out=3, bytes_out=300, dumps=1)},
                   {(7, 0, 25): 3}, {(7, 0, 25, 3): 2}, who)
    m.add_counters({7: row("ip", msgs_out=5, bytes_out=500, dumps=1, dump_intr=1)},
                   {(7, 0, 25): 5}, {(7, 0, 25, 3): 4}, who)
    m.forget([7])
    # the pid comes back as another process: the kernel counts it from 0
    m.add_counters({7: row("ip", msgs_out=1, bytes_out=50)}, {(7, 0, 25): 1}, {}, who)
    _, s = scrape(m)
    labels = {"comm": "ip", "container": "", "pod": "", "namespace": "", "netns": "ns1"}
    assert s["nlbpf_requests_total"] == [({"protocol": "route", "type": "RTM_DELROUTE",
                                           **labels}, 6.0)]
    assert s["nlbpf_request_errors_total"] == [({"protocol": "route", "type": "RTM_DELROUTE",
                                                 "errno": "ESRCH", **labels}, 4.0)]
    assert dict((l["direction"], v) for l, v in s["nlbpf_bytes_total"]) == {"out": 550.0}
    assert s["nlbpf_dumps_interrupted_total"] == [(labels, 1.0)]


def test_a_thousand_comms_make_at_most_limit_plus_one_label_sets():
    clock = Clock()
    m = Metrics(limit=50, ttl_s=60, type_name=named, clock=clock)
    rows, types, whos = {}, {}, {}
    for pid in range(1, 1001):
        rows[pid] = row(f"cmd{pid}", msgs_out=1, bytes_out=20)
        types[(pid, 0, 18)] = 1
        whos[pid] = (f"cmd{pid}", "", "", "", "host")
    m.add_counters(rows, types, {}, whos)
    text, s = scrape(m)
    comms = {l["comm"] for l, _ in s["nlbpf_requests_total"]}
    assert len(comms) == 51 and OTHER in comms
    # nothing is lost by folding: every request is counted somewhere
    assert sum(v for _, v in s["nlbpf_requests_total"]) == 1000
    other = [v for l, v in s["nlbpf_requests_total"] if l["comm"] == OTHER]
    assert other == [950.0]
    assert dict((l["state"], v) for l, v in s["nlbpf_label_sets"]) == {"live": 50, "limit": 50}
    assert s["nlbpf_label_sets_folded_total"] == [({}, float(950 * 3))]   # requests, msgs, bytes
    # pids are never a label
    assert "pid" not in text


def test_idle_label_sets_expire_and_make_room():
    clock = Clock()
    m = Metrics(limit=2, ttl_s=60, type_name=named, clock=clock)
    m.add_counters({1: row("a", msgs_out=1), 2: row("b", msgs_out=1)}, {}, {},
                   {1: ("a",) * 5, 2: ("b",) * 5})
    clock.now = 30
    m.add_counters({2: row("b", msgs_out=2)}, {}, {}, {2: ("b",) * 5})
    clock.now = 61
    assert m.expire() == 1                  # a: idle 61 s; b: 31 s
    m.add_counters({3: row("c", msgs_out=1)}, {}, {}, {3: ("c",) * 5})
    _, s = scrape(m)
    assert {l["comm"] for l, _ in s["nlbpf_messages_total"]} == {"b", "c"}


def test_unnamed_types_fold_into_other():
    m = Metrics(limit=10, ttl_s=60, type_name=named, clock=Clock())
    types = {(5, 0, t): 1 for t in range(1000, 1400)}
    types[(5, 0, 24)] = 2
    m.add_counters({5: row("hostile")}, types, {}, {5: ("hostile", "", "", "", "")})
    _, s = scrape(m)
    assert sorted((l["type"], v) for l, v in s["nlbpf_requests_total"]) == [
        ("RTM_NEWROUTE", 2.0), (OTHER, 400.0)]


def test_histograms_and_health_render():
    m = Metrics(limit=10, ttl_s=60, type_name=named, clock=Clock())
    hist = [0] * LAT_BUCKETS
    hist[lat_bucket(3000)] = 2
    hist[lat_bucket(2_000_000)] = 1
    lock = [0] * LAT_BUCKETS
    lock[0] = 3
    m.add_counters({}, {}, {}, {}, hists={(0, 25): {
        "count": 3, "lat_sum_ns": 2_006_000, "lock_sum_ns": 0, "lat_hist": hist,
        "lock_hist": lock}})
    m.set_health("counters", layer="syscall", lost=0, not_walked=2)
    _, s = scrape(m)
    count = [v for l, v in s["nlbpf_request_duration_seconds_count"]]
    assert count == [3.0]
    le = {l["le"]: v for l, v in s["nlbpf_request_duration_seconds_bucket"]}
    assert le["4.096e-06"] == 2 and le["0.002097152"] == 3
    assert s["nlbpf_calls_not_walked_total"] == [({"capture": "counters"}, 2.0)]
    assert s["nlbpf_up"] == [({}, 1.0)]
    assert s["nlbpf_layer"] == [({"capture": "counters", "layer": "syscall"}, 1.0)]


def test_who_labels_from_the_place():
    place = {"container": {"name": "kube-proxy", "pod": "kube-proxy-x7", "namespace": "kube-system",
                           "id": "ab" * 32}, "netns_name": None, "netns": 4026531840}
    assert who_of("iptables", place) == ("iptables", "kube-proxy", "kube-proxy-x7",
                                         "kube-system", "4026531840")
    assert who_of("ip", {"container": {"id": "cd" * 32}, "netns_name": "host"}) == \
        ("ip", "cd" * 6, "", "", "host")


@pytest.mark.parametrize("text, want", [
    (":9434", ("0.0.0.0", 9434)), ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("[::1]:9434", ("::1", 9434)), ("9100", ("0.0.0.0", 9100)),
])
def test_listen_addresses(text, want):
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["", ":0", ":70000", "host:port", "1.2.3.4:", "[::1:9434"])
def test_bad_listen_addresses_are_one_line(text):
    with pytest.raises(NlbpfError) as e:
        parse_listen(text)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
