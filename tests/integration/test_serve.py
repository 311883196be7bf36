"""nlbpf serve for real: a Prometheus server scrapes it while a workload makes known
failures; promtool checks the endpoint and the alert rules; 1,000 distinct comms
stay within the label-set bound; --events prints what errors --json prints."""
import ctypes
import json
import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.live import Netns
from tests.helpers.prometheus import (Prometheus, free_port, get, histogram_ok, need,
                                      scrape_until, value)

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "nlbpf.json"


def serve(nlbpf, *args):
    port = free_port()
    run = nlbpf("serve", "--listen", f"127.0.0.1:{port}", "--interval", "0.5", *args)
    run.port = port
    run.url = f"http://127.0.0.1:{port}/metrics"
    return run


def failing_route_deletes(ns, n):
    """`ip route del` of routes that do not exist: RTNETLINK answers: No such process."""
    for i in range(n):
        r = ns.ip("route", "del", f"10.99.{i}.0/24", check=False)
        assert r.returncode != 0 and "No such process" in r.stderr, r.stderr


def test_prometheus_counts_exactly_the_failed_route_deletes(nlbpf):
    ns = Netns()
    run = serve(nlbpf)
    prom = Prometheus(f"127.0.0.1:{run.port}")
    try:
        failing_route_deletes(ns, 7)
        want = (f'nlbpf_request_errors_total{{protocol="route",type="RTM_DELROUTE",'
                f'errno="ESRCH",netns="{ns.name}"}}')
        got = prom.wait_for(want, 7.0)
        assert len(got) == 1 and got[0][1] == 7.0, (got, prom.logs())
        labels = got[0][0]
        assert labels["comm"] == "ip" and labels["job"] == "nlbpf", labels
        # every request counted too, each in its type
        reqs = prom.query(f'nlbpf_requests_total{{type="RTM_DELROUTE",netns="{ns.name}"}}')
        assert [v for _, v in reqs] == [7.0], reqs
        assert prom.query("nlbpf_up")[0][1] == 1.0
        layers = {l["capture"]: l["layer"] for l, _ in prom.query("nlbpf_layer")}
        assert set(layers) >= {"counters", "errors"}, layers
        # the dashboard's queries are valid PromQL against real series
        dash = json.loads(DASHBOARD.read_text())
        for panel in dash["panels"]:
            for target in panel["targets"]:
                expr = (target["expr"].replace("$__rate_interval", "1m")
                        .replace("$instance", ".*").replace("$job", "nlbpf"))
                prom.query(expr)
    finally:
        prom.stop()
        run.stop()
        ns.delete()
    assert run.proc.returncode == 0, run.stderr
    assert re.search(r"nlbpf: served; 0 events lost, \d+ calls not walked", run.stderr), run.stderr


def test_promtool_checks_the_endpoint_in_both_formats(nlbpf):
    ns = Netns()
    run = serve(nlbpf)
    try:
        failing_route_deletes(ns, 2)
        text, ctype = get(run.url)
        assert ctype.startswith("text/plain"), ctype
        check = subprocess.run([need("promtool"), "check", "metrics"], input=text,
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # OpenMetrics, when the scraper asks for it
        om, ctype = get(run.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert ctype.startswith("application/openmetrics-text"), ctype
        assert om.rstrip().endswith("# EOF")
        for name in ("nlbpf_requests_total", "nlbpf_request_errors_total", "nlbpf_dumps_total",
                     "nlbpf_dumps_interrupted_total", "nlbpf_bytes_total", "nlbpf_messages_total",
                     "nlbpf_lock_wait_seconds_total", "nlbpf_call_errors_total",
                     "nlbpf_slow_requests_total", "nlbpf_events_lost_total",
                     "nlbpf_calls_not_walked_total", "nlbpf_up", "nlbpf_build_info",
                     "nlbpf_request_duration_seconds", "nlbpf_slow_threshold_seconds",
                     "process_resident_memory_bytes"):
            assert f"# TYPE {name}" in text or f"# HELP {name}" in text, name
    finally:
        run.stop()
        ns.delete()


def test_the_alert_rules_check_and_fire():
    promtool = need("promtool")
    check = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", str(ALERTS.with_name("alerts_test.yml"))],
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    # each alert is tested
    names = set(re.findall(r"^\s+- alert: (\w+)", ALERTS.read_text(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", ALERTS.with_name("alerts_test.yml").read_text()))
    assert names and names == tested, names ^ tested


def many_comms(ns_name, n):
    """n processes, each with its own comm, each sending one RTM_GETLINK dump in the netns."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                libc.prctl(15, f"nlc{i:04d}".encode(), 0, 0, 0)      # PR_SET_NAME
                if libc.setns(fd, 0x40000000) != 0:                  # CLONE_NEWNET
                    os._exit(3)
                s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
                s.sendto(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + bytes(16), (0, 0))
                while True:
                    data = s.recv(65536)
                    if struct.unpack_from("=H", data, 4)[0] in (2, 3):   # ERROR, DONE
                        break
                os._exit(0)
            except BaseException:
                os._exit(4)
        pids.append(pid)
        if len(pids) >= 64:                 # at most 64 at once
            for p in pids:
                assert os.waitpid(p, 0)[1] == 0
            pids = []
    for p in pids:
        assert os.waitpid(p, 0)[1] == 0
    os.close(fd)


def getlinks_counted(text, ns_name):
    """RTM_GETLINK requests counted in ns_name's series and under comm="other"."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nlbpf_requests_total{") and "RTM_GETLINK" in line
               and (f'netns="{ns_name}"' in line or 'comm="other"' in line))


def test_a_thousand_comms_stay_within_the_label_bound(nlbpf):
    ns = Netns()
    run = serve(nlbpf, "--max-label-sets", "50", "--slow", "off")
    try:
        many_comms(ns.name, 1000)
        deadline = time.monotonic() + 30
        while True:
            text, _ = get(run.url)
            counted = getlinks_counted(text, ns.name)
            if counted >= 1000 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # every child's request is counted (other may hold the rest of the machine's too)
        assert counted >= 1000, counted
        series = [line for line in text.splitlines() if line.startswith("nlbpf_requests_total{")]
        comms = set(re.findall(r'comm="([^"]*)"', "\n".join(series)))
        # 50 label sets of their own at most, the rest under "other"
        assert "other" in comms and len(comms) <= 51, sorted(comms)
        sets = dict(re.findall(r'^nlbpf_label_sets\{state="(\w+)"\} (\S+)', text, re.M))
        assert float(sets["live"]) <= 50 and float(sets["limit"]) == 50, sets
        assert "pid=" not in text
    finally:
        run.stop()
        ns.delete()


def test_events_prints_failed_requests_as_errors_json_does(nlbpf):
    ns = Netns()
    run = serve(nlbpf, "--events", "--slow", "off")
    errors = nlbpf("errors", "--json", "--netns", ns.name)
    try:
        failing_route_deletes(ns, 3)
    finally:
        errors.stop()
        run.stop()
        ns.delete()
    mine = [r for r in run.records() if r.get("netns_name") == ns.name]
    want = errors.records()
    assert len(mine) == 3 and len(want) == 3, (run.stdout_lines, errors.stdout_lines)
    for got, ref in zip(mine, want):
        assert got["type"] == "RTM_DELROUTE" and got["error"] == "ESRCH", got
        assert set(got) == set(ref)
        assert got["request"]["attrs"] == ref["request"]["attrs"]


def test_the_syscall_layer_times_each_request_type(nlbpf):
    """Latency and lock-wait histograms per type, where the layer sees a request's start
    (the kernel layer's are tested in the VM: test_kernel_layer.py)."""
    ns = Netns()
    port = free_port()
    run = nlbpf("serve", "--listen", f"127.0.0.1:{port}", "--interval", "0.5", "--slow", "off",
                "--hooks", "syscall")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        failing_route_deletes(ns, 3)
        got = scrape_until(url, lambda got: value(
            got, "nlbpf_request_errors_total", netns=ns.name, errno="ESRCH") == 3)
        assert value(got, "nlbpf_request_errors_total", netns=ns.name, errno="ESRCH",
                     type="RTM_DELROUTE", comm="ip") == 3
        assert histogram_ok(got, "nlbpf_request_duration_seconds", type="RTM_DELROUTE") >= 3
        assert histogram_ok(got, "nlbpf_request_lock_wait_seconds", type="RTM_DELROUTE") >= 3
        assert value(got, "nlbpf_layer", capture="counters", layer="syscall") == 1
    finally:
        run.stop()
        ns.delete()
