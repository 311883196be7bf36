"""How a run ends: within seconds of a signal or --duration whatever the backlog, with
a closing line that adds up, and with one line when the output cannot be written. This is
live.run's (nlbpf/commands/live.py), the same on every hook layer, so these run on the host only (vm/ leaves
them out)."""
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.live import TRACING_LINE, Run, closing_numbers, hooks_args, nlbpf_cmd


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
