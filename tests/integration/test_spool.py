"""trace --spool: a capture child spools the probes' raw events, the parent
decodes behind it. Only where records come from differs from live trace, not
the probes, so these run on the host only (vm/ leaves them out)."""
import glob
import signal
import subprocess
import tempfile
import time

import pytest
from test_capture import by_pid

TIMEOUT = 60


def spools():
    return set(glob.glob(f"{tempfile.gettempdir()}/nlbpf-spool-*"))


def _key(rec):
    return (rec["direction"], rec["type"], rec["seq"], rec["errno"], rec["pid"], rec["comm"],
            rec["netns"], rec["protocol"])


@pytest.mark.parametrize("buffer", ["auto", "perf"])
def test_spooled_trace_shows_what_live_trace_shows(nlbpf, netns, buffer):
    """auto: the ring's spans go to the spool as they are; perf: one event at a time."""
    before = spools()
    live = nlbpf("trace", "--json", "--no-spool")
    spooled = nlbpf("trace", "--spool", "--json", "--buffer", buffer)
    n = 100
    lines = [f"route add blackhole 10.7.{i}.0/24" for i in range(n)]
    lines += [f"route del blackhole 10.7.{i}.0/24" for i in range(n)]
    lines.append("route del 198.51.100.0/24")           # ESRCH
    pid = netns.batch(lines, check=False)
    live.stop(settle=1.0)
    spooled.stop(settle=1.0, timeout=TIMEOUT)
    assert spooled.proc.returncode == 0, spooled.stderr
    want = by_pid(live.records(), pid)
    got = by_pid(spooled.records(), pid)
    assert len(want) == 2 * (2 * n + 1), len(want)
    assert [_key(r) for r in got] == [_key(r) for r in want]
    failed = [r for r in got if r["direction"] == "request" and r["type"] == "RTM_DELROUTE"
              and r["error"] == "ESRCH"]
    assert len(failed) == 0     # trace shows the request, and the error on its reply
    errs = [r for r in got if r["error"] == "ESRCH"]
    assert len(errs) == 1 and errs[0]["latency_us"] is not None
    assert errs[0]["request"]["attrs"]["RTA_DST"] == "198.51.100.0"
    assert [r["message"] for r in got] == [r["message"] for r in want]
    assert spooled.lost() == 0 and live.lost() == 0
    assert spooled.stderr_lines[0].startswith("Hooks: ")
    assert spools() <= before, "the spool file was left behind"


def test_spool_keeps_a_burst_and_accounts_for_every_event_at_the_end(nlbpf, netns):
    """The burst is over long before it is all shown: it is spooled whole (none lost),
    and Ctrl-C ends the run within seconds, whatever is left. What was shown came in
    order with its replies paired; the closing line counts the rest as not shown."""
    n = 10000
    lines = [f"route add blackhole 10.{i // 250}.{i % 250}.0/24" for i in range(n)]
    lines += [f"route del blackhole 10.{i // 250}.{i % 250}.0/24" for i in range(n)]
    run = nlbpf("trace", "--spool", "--json", "--netns", netns.name)
    pid = netns.batch(lines)
    t0 = time.monotonic()
    run.stop(settle=0.2, timeout=60)
    took = time.monotonic() - t0
    assert run.proc.returncode == 0, run.stderr
    assert took < 15, took
    s = run.summary()
    assert s["lost"] == 0 and s["not_walked"] == 0
    recs = run.records()
    assert s["shown"] == len(recs) and s["events"] == s["shown"] + s["not_shown"] >= 4 * n
    mine = by_pid(recs, pid)
    requests = [r for r in mine if r["direction"] == "request"]
    acks = [r for r in mine if r["direction"] == "reply" and r["type"] == "NLMSG_ERROR"]
    assert len(requests) - 1 <= len(acks) <= len(requests)
    assert all(a["errno"] is None and a["latency_us"] is not None for a in acks)
    if s["not_shown"]:
        assert "at most" in s["why"], s


def test_second_ctrl_c_stops_showing_the_spool_and_says_so(nlbpf, netns):
    n = 10000
    lines = [f"route add blackhole 10.{i // 250}.{i % 250}.0/24" for i in range(n)]
    lines += [f"route del blackhole 10.{i // 250}.{i % 250}.0/24" for i in range(n)]
    run = nlbpf("trace", "--spool", "--json", "--netns", netns.name)
    netns.batch(lines)
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(30)
    took = time.monotonic() - t0
    run.stop(settle=0)
    assert run.proc.returncode == 0, run.stderr
    s = run.summary()
    assert s["lost"] == 0 and took < 10, (s, took)
    assert s["shown"] == len(run.records()) and s["events"] >= 4 * n
    if s["not_shown"]:
        assert "stopped by a second signal" in s["why"], s


def test_spool_with_read_is_a_usage_error():
    from tests.helpers.live import nlbpf_cmd
    proc = subprocess.run(nlbpf_cmd() + ["trace", "--spool", "--read", "x.pcapng"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "nlbpf: --spool captures live; it does not apply to --read"]


def test_a_capture_child_that_dies_is_reported_not_hidden(nlbpf, netns):
    run = nlbpf("trace", "--spool", "--json")
    kids = subprocess.run(["pgrep", "-P", str(run.proc.pid)], capture_output=True, text=True)
    child = int(kids.stdout.split()[0])
    netns.ip("route", "add", "blackhole", "10.6.0.0/24")
    time.sleep(0.5)
    subprocess.run(["kill", "-KILL", str(child)], check=True)
    run.proc.wait(30)
    run.stop(settle=0)
    assert run.proc.returncode == 1, run.stderr
    assert "the capture process ended on its own (exit status -9)" in run.stderr
    assert "nlbpf: \n" not in run.stderr
    assert any(r["type"] == "RTM_NEWROUTE" for r in run.records())


def test_a_capture_that_cannot_start_says_why_in_one_line():
    from tests.helpers.live import nlbpf_cmd
    proc = subprocess.run(nlbpf_cmd() + ["trace", "--spool", "--hooks", "kernel", "--duration", "1"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:        # this kernel has the kernel-function layer
        assert "Tracing netlink" in proc.stderr
        return
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("nlbpf: the kernel-function layer cannot load here")
