"""What nlbpf prints is true, and what it misses it counts: hostile and unusual clients
(tests/trickster.py), commands stopped under load, output that cannot be written."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TESTS, TRACING_LINE, Run, closing_numbers, hooks_args, nlbpf_cmd

TRICKSTER = TESTS / "trickster.py"
TIMEOUT = 120
# every scenario: (arguments, what it sends)
SCENARIOS = [("forge",), ("iovecs", "70"), ("empties", "99"), ("mmsg", "300"), ("rw",),
             ("split",)]


def trick(netns, *args):
    proc = netns.popen([sys.executable, str(TRICKSTER), *args])
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def layer(run):
    return run.stderr.split("\n", 1)[0].removeprefix("Hooks: ").split(" (")[0]


@pytest.fixture(scope="module")
def traced(request):
    """trace and errors, live together, over every scenario in one netns."""
    from conftest import Netns
    ns = Netns()
    runs = {"trace": Run(["trace", "--json", "--netns", ns.name] + hooks_args()),
            "errors": Run(["errors", "--json", "--netns", ns.name] + hooks_args())}
    if not os.environ.get("NLBPF_TEST_HOOKS"):
        runs["errors-syscall"] = Run(["errors", "--json", "--netns", ns.name, "--hooks",
                                      "syscall"])
    try:
        done = {args[0]: trick(ns, *args) for args in SCENARIOS}
        time.sleep(0.5)
        for run in runs.values():
            run.stop()
        yield runs, done
    finally:
        for run in runs.values():
            if run.proc.poll() is None:
                run.proc.kill()
        ns.delete()


def test_a_forged_reply_is_shown_as_what_it_is(traced):
    """Process B sends A's port an NLMSG_ERROR (ENOENT) with A's next seq before A asks
    the kernel for lo: A's request is answered by the kernel's RTM_NEWLINK and ACK, and
    B's message is shown as from B's port, never as the kernel's answer."""
    runs, done = traced
    f = done["forge"]
    recs = [r for r in runs["trace"].records() if r["pid"] == f["pid"]]
    forged = [r for r in recs if r["direction"] == "from_user"]
    assert len(forged) == 1, recs
    assert forged[0]["peer"] == {"portid": f["forger_port"], "pid": f["forger"]}
    assert forged[0]["latency_us"] is None and "not the kernel" in forged[0]["summary"]
    final = [r for r in recs if r["latency_us"] is not None]
    assert len(final) == 1 and final[0]["type"] == "NLMSG_ERROR" and final[0]["error"] is None
    assert final[0]["dump"] == {"parts": 1, "bytes": final[0]["dump"]["bytes"], "intr": False}
    sent = [r for r in runs["trace"].records() if r["pid"] == f["forger"]]
    assert [r["direction"] for r in sent] == ["to_user"], sent
    assert sent[0]["peer"]["portid"] == f["portid"]
    for name in ("errors", "errors-syscall"):
        if name in runs:
            assert not [r for r in runs[name].records() if r["pid"] == f["pid"]], name


@pytest.mark.parametrize("scenario", ["iovecs", "empties", "mmsg", "rw", "split"])
def test_every_request_is_seen_or_counted(traced, scenario):
    """Requests in iovec 65 and later, after 99 empty iovecs, 300 in one sendmmsg, sent
    with write()/writev()/pwritev2() and answered into read()/readv()/preadv2(), and
    headers cut into 16 one-byte iovecs: each failing delete is shown by trace with its
    ESRCH and by errors; what a hook layer cannot walk, its closing line counts."""
    runs, done = traced
    d = done[scenario]
    want = {seq for seq, _ in d["requests"]}
    assert len(d["errors"]) == len(want)        # the kernel answered each with ESRCH
    trace = runs["trace"]
    recs = [r for r in trace.records() if r["pid"] == d["pid"]]
    requests = {r["seq"] for r in recs if r["direction"] == "request"
                and r["type"] == "RTM_DELROUTE"}
    paired = {r["seq"] for r in recs if r["error"] == "ESRCH" and r["latency_us"] is not None}
    assert not [r for r in recs if r["direction"] == "request" and r["seq"] not in want]
    walked = closing_numbers(trace.stderr)["not_walked"]
    if paired != want or requests != want:
        # the kernel layer pairs the first 16 requests of one skb (KWALK_FULL); past
        # that it shows the headers and counts the call as not walked
        assert walked > 0, (scenario, len(requests), len(paired), len(want))
        assert requests == want
    for name in ("errors", "errors-syscall"):
        if name not in runs:
            continue
        errs = [r for r in runs[name].records() if r["pid"] == d["pid"]]
        got = {r["seq"] for r in errs if r["error"] == "ESRCH" and r["type"] == "RTM_DELROUTE"}
        if got != want:
            assert closing_numbers(runs[name].stderr)["not_walked"] > 0, (name, scenario)
        assert got <= want
        # the request each shows is the one the kernel failed, decoded whole
        assert all(r["request"]["attrs"]["RTA_DST"].startswith("198.") for r in errs), errs


def test_a_request_sent_with_sendfile_is_seen_or_counted(nlbpf, netns):
    """sendfile(2) into a netlink socket: no send syscall carries the request. The
    kernel-function layer sees it; the syscall layer counts it as not walked where the
    kernel has sock:sock_send_length (6.7+); errors on the socket layer sees its error."""
    from nlbpf.capture.layers import have_sock_length_tracepoints
    trace = nlbpf("trace", "--json", "--netns", netns.name)
    errors = nlbpf("errors", "--json", "--netns", netns.name)
    d = trick(netns, "sendfile")
    trace.stop()
    errors.stop()
    (seq, _), = d["requests"]
    seen = [r for r in trace.records() if r["pid"] == d["pid"] and r["seq"] == seq
            and r["direction"] == "request"]
    if layer(trace) == "syscall":
        if not have_sock_length_tracepoints():
            pytest.skip("this kernel has no sock:sock_send_length (6.7+): the syscall layer "
                        "cannot count what no syscall it hooks carries")
        assert not seen and trace.summary()["not_walked"] >= 1, trace.stderr
    else:
        assert len(seen) == 1
    errs = [r for r in errors.records() if r["pid"] == d["pid"] and r["seq"] == seq]
    if layer(errors) == "syscall":
        assert not errs and errors.summary()["not_walked"] >= 1, errors.stderr
    else:
        assert [r["error"] for r in errs] == ["ESRCH"], errors.records()


def test_the_closing_lines_add_up(traced):
    runs, _ = traced
    for name, run in runs.items():
        s = closing_numbers(run.stderr)
        assert s["lost"] == 0, (name, s)
        if name == "trace":
            assert s["shown"] == len(run.records()) and s["not_shown"] == 0, s


def test_ip_dump_requests_are_not_followed_by_phantom_messages(nlbpf, netns):
    """iproute2 sends dump requests in a zeroed 1 KB buffer: the kernel stops at the
    first zero-length header, so nlbpf shows the request and nothing after it."""
    run = nlbpf("trace", "--json", "--netns", netns.name)
    for what in (["addr", "show"], ["route", "show"], ["link", "show"]):
        netns.ip(*what)
    run.stop()
    recs = run.records()
    requests = [r for r in recs if r["direction"] == "request"]
    assert {r["type"] for r in requests} >= {"RTM_GETADDR", "RTM_GETROUTE", "RTM_GETLINK"}
    assert not [r for r in recs if r["malformed"] or r["type"] in ("0x0", "NLMSG_NOOP")], recs


def _route_churn(netns, seconds):
    """An ip -batch of route adds and deletes, over and over, for `seconds`."""
    lines = []
    for i in range(2000):
        lines.append(f"route add blackhole 10.{i // 250}.{i % 250}.0/24")
        lines.append(f"route del blackhole 10.{i // 250}.{i % 250}.0/24")
    path = Path(f"/tmp/{netns.name}.churn")
    path.write_text("\n".join(lines) + "\n")
    script = f"end=$((SECONDS+{seconds})); while [ $SECONDS -lt $end ]; do " \
             f"ip -n {netns.name} -batch {path} || exit 1; done"
    return subprocess.Popen(["bash", "-c", script], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "twice", "duration"])
def test_slow_with_no_threshold_ends_within_seconds_under_load(netns, how):
    """slow --threshold 0 in a netns with a sustained route add/del loop: every request is
    a record, and the end comes within seconds of the signal or --duration, saying how
    much was not shown (it kept working through the backlog for 10+ minutes)."""
    extra = ["--duration", "4"] if how == "duration" else []
    run = Run(["slow", "--threshold", "0", "--json", "--netns", netns.name] + extra
              + hooks_args())
    churn = _route_churn(netns, 60)
    try:
        time.sleep(4)
        t0 = time.monotonic()
        if how != "duration":
            run.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
        if how == "twice":
            time.sleep(0.2)
            run.proc.send_signal(signal.SIGINT)
        run.proc.wait(30)
        took = time.monotonic() - t0
    finally:
        churn.kill()
        churn.wait()
    run.stop(settle=0)
    assert run.proc.returncode == 0, run.stderr
    assert took < 10, took
    assert "Traceback" not in run.stderr
    s = run.summary()
    assert s["shown"] > 0
    assert len(run.records()) > 0


def _full_fs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    return mnt


@pytest.mark.parametrize("command", [["trace"], ["trace", "--no-spool"],
                                     ["slow", "--threshold", "0"], ["errors"]])
def test_output_to_a_full_disk_is_one_line_and_a_failure(netns, command):
    """stdout on /dev/full: one line, exit 1, probes let go (the process ends)."""
    argv = nlbpf_cmd() + command + ["--netns", netns.name, "--duration", "20"] + hooks_args()
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen(argv, stdout=full, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        deadline = t0 + 120
        # traffic until it notices: errors needs failures, the others any request
        while proc.poll() is None and time.monotonic() < deadline:
            netns.ip("route", "del", "198.51.100.0/24", check=False)
            time.sleep(0.05)
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("nlbpf: ")]
    assert "nlbpf: cannot write the output: No space left on device" in lines, err
    closing_numbers(err)


def test_record_to_a_full_disk_is_one_line_and_a_failure(netns, tmp_path):
    mnt = _full_fs(tmp_path)
    try:
        out = mnt / "x.pcapng"
        argv = nlbpf_cmd() + ["record", "-w", str(out), "--netns", netns.name,
                              "--duration", "60"] + hooks_args()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            netns.batch([f"route add blackhole 10.9.{i}.0/24" for i in range(200)]
                        + [f"route del blackhole 10.9.{i}.0/24" for i in range(200)])
        err = proc.communicate(timeout=60)[1]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert f"nlbpf: cannot write {out}: No space left on device" in err.splitlines(), err
    closing_numbers(err)


def test_trace_into_head_still_says_what_it_saw(netns):
    """`nlbpf trace | head -1`: the closing line counts what the kernel handed over,
    shown and not shown (it said 0 events from the kernel)."""
    argv = nlbpf_cmd() + ["trace", "--netns", netns.name] + hooks_args()
    head = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc = subprocess.Popen(argv, stdout=head.stdin, stderr=subprocess.PIPE, text=True)
    head.stdin.close()
    err_lines = []
    for line in proc.stderr:
        err_lines.append(line)
        if TRACING_LINE in line:
            break
    for _ in range(50):
        if proc.poll() is not None:
            break
        netns.ip("link", "show")
        time.sleep(0.1)
    err_lines += proc.stderr.readlines()
    proc.wait(60)
    head.wait(10)
    err = "".join(err_lines)
    assert proc.returncode == 0, err
    s = closing_numbers(err)
    assert s["shown"] >= 1 and s["events"] > 1 and "the output was closed" in s["why"], s


def test_record_into_head_still_says_what_it_saw(netns):
    argv = nlbpf_cmd() + ["record", "-w", "-", "--netns", netns.name] + hooks_args()
    head = subprocess.Popen(["head", "-c", "3000"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    proc = subprocess.Popen(argv, stdout=head.stdin, stderr=subprocess.PIPE, text=True)
    head.stdin.close()
    for line in proc.stderr:
        if TRACING_LINE in line:
            break
    for _ in range(100):
        if proc.poll() is not None:
            break
        netns.ip("link", "show")
        time.sleep(0.1)
    err = proc.stderr.read()
    proc.wait(60)
    assert proc.returncode == 0, err
    s = closing_numbers(err)
    assert s["events"] >= 1, s


def test_sighup_ends_with_the_closing_line(nlbpf, netns):
    run = nlbpf("trace", "--json", "--netns", netns.name)
    netns.ip("link", "show")
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGHUP)
    run.proc.wait(30)
    run.stop(settle=0)
    assert run.proc.returncode == 0, run.stderr
    s = run.summary()
    assert s["shown"] == len(run.records()) >= 2
