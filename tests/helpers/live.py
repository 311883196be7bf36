"""Live-run helpers for the root integration tests: nlbpf started for real
(Run), throwaway network namespaces (Netns), the closing line's numbers, and
what BPF programs a run holds. NLBPF_TEST_HOOKS (kernel|syscall) is passed on as
--hooks when set (the VM harness runs the suite once per hook layer)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent   # tests/
NLCLIENT = TESTS / "nlclient.py"
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."


def _why_not():
    if os.geteuid() != 0:
        return "not root: the probes need root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not importable (run scripts/setup.sh)"
    if not shutil.which("ip"):
        return "iproute2 is missing"
    return None


WHY_NOT = _why_not()


def nlbpf_cmd():
    exe = Path(sys.executable).parent / "nlbpf"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "nlbpf.cli"]
    return base


def hooks_args():
    hooks = os.environ.get("NLBPF_TEST_HOOKS")
    return ["--hooks", hooks] if hooks else []


class Run:
    """One nlbpf process: started, waited for its Tracing line, stopped with SIGINT."""

    # bcc compiles the probes at start: seconds here, much longer under the VM's emulation
    STARTUP_TIMEOUT = 600 if os.environ.get("NLBPF_VM") else 90

    def __init__(self, args, startup_timeout=None):
        startup_timeout = startup_timeout or self.STARTUP_TIMEOUT
        self.args = nlbpf_cmd() + args
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.stderr_lines = []
        self.stdout_lines = []
        self._ready = threading.Event()
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err.start()
        self._t_out.start()
        if not self._ready.wait(startup_timeout):
            self.proc.kill()
            raise AssertionError(f"nlbpf did not start: {' '.join(self.args)}\n" + "".join(self.stderr_lines))
        if self.proc.poll() is not None and TRACING_LINE not in "".join(self.stderr_lines):
            raise AssertionError("nlbpf exited early:\n" + "".join(self.stderr_lines))

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if TRACING_LINE in line:
                self._ready.set()
        self._ready.set()

    def _read_out(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def stop(self, settle=0.5, timeout=None):
        """SIGINT, and wait for the end (which may show what was captured for --drain
        seconds: NLBPF_DRAIN, which the VM sets)."""
        time.sleep(settle)
        if timeout is None:
            timeout = 60 + float(os.environ.get("NLBPF_DRAIN", 2))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout)
        self._t_err.join(5)
        self._t_out.join(5)
        return self

    @property
    def stderr(self):
        return "".join(self.stderr_lines)

    def records(self):
        return [json.loads(line) for line in self.stdout_lines if line.strip()]

    def lost(self):
        """Lost-event count from nlbpf's closing line on stderr."""
        for line in reversed(self.stderr_lines):
            m = re.match(r"nlbpf: .*?\b(\d+) lost\b", line)
            if m:
                return int(m.group(1))
        raise AssertionError("no closing summary on stderr:\n" + self.stderr)

    def summary(self):
        """The closing line's numbers: events, shown, not_shown, lost, not_walked (the
        first four add up to events), and the line itself."""
        return closing_numbers(self.stderr)


CLOSING = re.compile(r"^nlbpf: .*?; (\d+) events from the kernel: (\d+) (?:shown|written), "
                     r"(\d+) not (?:shown|written)(?: \(([^)]*)\))?, (\d+) lost.*?, "
                     r"(\d+) not walked", re.M)


def closing_numbers(stderr):
    """The last closing line in stderr, as a dict; AssertionError if there is none or its
    numbers do not add up."""
    found = CLOSING.findall(stderr)
    assert found, "no closing line on stderr:\n" + stderr
    events, shown, not_shown, why, lost, walked = found[-1]
    d = {"events": int(events), "shown": int(shown), "not_shown": int(not_shown),
         "why": why, "lost": int(lost), "not_walked": int(walked)}
    assert d["events"] == d["shown"] + d["not_shown"] + d["lost"] + d["not_walked"], d
    return d


class Netns:
    def __init__(self):
        self.name = f"nlbpf-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.ip("link", "set", "lo", "up")
        self.inode = os.stat(f"/run/netns/{self.name}").st_ino

    def ip(self, *args, check=True, **kw):
        return subprocess.run(["ip", "-n", self.name, *args], check=check, capture_output=True,
                              text=True, **kw)

    def popen(self, argv, **kw):
        """Start argv inside the netns; `ip netns exec` execs, so the pid is argv's."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    def batch(self, lines, check=True):
        path = Path(f"/tmp/{self.name}.batch")
        path.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(["ip", "-n", self.name, "-batch", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=300)
        if check and proc.returncode:
            raise AssertionError(f"ip -batch failed: {err[:500]}")
        path.unlink()
        return proc.pid

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def require_sock_layer():
    """Skip unless the socket layer loads here (nlbpf doctor says), and this run is not
    about another layer (the VM sets NLBPF_TEST_HOOKS; its 6.1 kernel lacks this one)."""
    asked = os.environ.get("NLBPF_TEST_HOOKS")
    if asked:
        pytest.skip(f"this run tests the {asked} layer (NLBPF_TEST_HOOKS)")
    r = subprocess.run(nlbpf_cmd() + ["doctor", "--json"], capture_output=True, text=True)
    try:
        sock = json.loads(r.stdout)["layers"]["sock"]
    except (ValueError, KeyError):
        pytest.fail(f"nlbpf doctor failed: {r.stderr.strip()}")
    if not sock["loads"]:
        pytest.skip(f"the socket layer cannot load here: {sock['detail']}")


def once_in_the_vm(what):
    """Skip in the VM's kernel-function runs: `what` is userspace, the same on every hook
    layer, and the VM's syscall-layer run covers it (emulation makes each test costly,
    and CI gives each layer 20 minutes)."""
    if os.environ.get("NLBPF_VM") and os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        pytest.skip(f"{what}: the same on every layer; the VM's syscall run covers it")


def family(pid):
    """pid and its descendants: `trace` loads its probes in a child (its spool's capture)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return set(pids)


def program_ids(pid):
    """BPF program and map ids a process and its children hold (from /proc/PID/fdinfo)."""
    progs, maps = set(), set()
    fds = [f for p in family(pid) for f in Path(f"/proc/{p}/fdinfo").glob("*")]
    for f in fds:
        try:
            text = f.read_text()
        except OSError:
            continue
        for key, into in (("prog_id", progs), ("map_id", maps)):
            m = re.search(rf"^{key}:\s*(\d+)", text, re.M)
            if m:
                into.add(int(m.group(1)))
    return progs, maps


def bpftool_json(*args):
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")
