#!/usr/bin/env python3
"""nlbpf benchmarks: overhead on netlink-heavy workloads, next to strace, and trace throughput.

    sudo .venv/bin/python bench/run.py --reps 5

Workloads (each in a network namespace this script creates and deletes):
  batch    ip -force -batch: 10k blackhole route adds, 10k deletes, and 100 deletes of
           routes that do not exist (ESRCH: what `nlbpf errors` must report)
  getlink  a tight loop of RTM_GETLINK(lo) requests with ACK (bench/nlload.py)
  dump     one dump of a 50k-route table (bench/nlload.py)
  other    not netlink: dd copying single bytes (--other-count; 2 syscalls each), what
           every other process on the node pays while nlbpf runs (opt-in:
           --workloads ...,other)
Configurations: bare; nlbpf trace --json; nlbpf errors; nlbpf slow --threshold 500ms;
nlbpf top; strace -f -e trace=%network (strace decodes netlink itself); and floors
(bench/floor.py, not nlbpf): empty programs on the syscall layer's and on the socket
layer's hooks, and the socket layer's hooks copying every message out, the least any
trace can do (floor, floor-sock, floor-sock-copy).

Each repetition runs every workload under every configuration, in an order
shuffled per repetition, so drift hits all configurations alike. Before each run
the script waits until nobody else's tracing BPF programs are loaded (they would
slow bare runs too), and marks the run noisy when that never happened or they
appeared meanwhile; noisy runs are left out of the medians when at least three
quiet ones remain. Workloads and tracers run at nice -20 (--nice), so other
users' jobs on a shared machine do not time-slice them.

Then the throughput test: `nlbpf trace --json > /dev/null` (every message decoded
as it comes) and `nlbpf record -w FILE` (kept raw, decoded later by `nlbpf read`)
against paced senders at rising message rates, each rate sustained for
--tp-seconds; the kernel's lost counter in nlbpf's closing line says whether
anything was dropped.

Hook layers: an nlbpf configuration runs with the layer the kernel offers
(--hooks auto). NAME@LAYER runs it on a given one, for comparing them in one run
on a kernel that has them all (vm/run-tests.sh --layers bench):
  errors@syscall   syscall tracepoints
  errors@fentry    the kernel-function layer through fentry/fexit
  errors@kprobe    the kernel-function layer through kprobes

Prints the markdown tables and writes bench/RESULTS.md and bench/results.json.
"""
import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NLLOAD = BENCH / "nlload.py"
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."
# trace: "nlbpf: N records; E events from the kernel: S shown, U not shown (why), L lost, W
# not walked"; record: "nlbpf: N messages written to F; ... S written, U not written ...".
# Trees before 2026-12-06 closed with "nlbpf: N records, E events from the kernel, L lost".
CLOSING_RE = re.compile(r"^nlbpf: (\d+) (?:records|messages written to [^;]*); \d+ events from "
                        r"the kernel: (\d+) (?:shown|written), (\d+) not (?:shown|written)"
                        r"(?: \([^)]*\))?, (\d+) lost")
OLD_CLOSING_RE = re.compile(r"^nlbpf: (\d+) (?:records|messages written to [^;]*)[,;] "
                            r"(\d+) events from the kernel, (\d+) lost")
# the throughput test's tracers: decode every message, or keep them raw for later
TP_COMMANDS = {"trace": ("nlbpf trace --json > /dev/null", ["trace", "--json"]),
               "record": ("nlbpf record -w FILE", ["record", "-w", "{file}"]),
               # a capture child spools raw, this process decodes behind it: trace's
               # default since 2026-12-05 (--spool names it for older trees)
               "trace-spool": ("nlbpf trace --spool --json > /dev/null",
                               ["trace", "--spool", "--json"]),
               # capture and decoding in one process, trace's default before
               "trace-live": ("nlbpf trace --no-spool --json > /dev/null",
                              ["trace", "--no-spool", "--json"])}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
QUIET_MIN = 3           # quiet runs needed before noisy ones are left out
TRACING_PROG_TYPES = {"tracepoint", "raw_tracepoint", "kprobe", "tracing", "perf_event",
                      "raw_tracepoint_writable"}

SERVE_PORT = 9439          # the serve configuration's /metrics, scraped after each run
CONFIGS = {
    # name: (label, nlbpf arguments or None)
    "bare": ("bare", None),
    "trace": ("nlbpf trace --json", ["trace", "--json"]),
    # trace's capture in a child spooling raw, decoded behind it: trace's default since
    # 2026-12-05; --spool names it for older trees (opt-in: --configs ...)
    "trace-spool": ("nlbpf trace --spool --json", ["trace", "--spool", "--json"]),
    # capture and decoding in one process (trace's default before; opt-in)
    "trace-live": ("nlbpf trace --no-spool --json", ["trace", "--no-spool", "--json"]),
    # trace keeping more of each message (--snaplen): what whole link messages cost
    "trace-2048": ("nlbpf trace --json --snaplen 2048", ["trace", "--json", "--snaplen", "2048"]),
    "trace-4096": ("nlbpf trace --json --snaplen 4096", ["trace", "--json", "--snaplen", "4096"]),
    "errors": ("nlbpf errors", ["errors", "--json"]),
    "slow": ("nlbpf slow --threshold 500ms", ["slow", "--threshold", "500ms", "--json"]),
    "top": ("nlbpf top", ["top", "--json", "--interval", "1"]),
    # the exporter: top's counters, errors' and slow's probes, /metrics on a local port
    "serve": ("nlbpf serve", ["serve", "--listen", f"127.0.0.1:{SERVE_PORT}", "--interval", "1"]),
    "strace": ("strace -f -e trace=%network", None),
    # not nlbpf: empty programs on the syscall layer's tracepoints, the cost of the hook alone
    "floor": ("empty BPF on the syscall tracepoints", ["floor"]),
    # the same, as one dispatcher on raw_syscalls (bench/floor.py --raw)
    "floor-raw": ("empty BPF on raw_syscalls, by syscall number", ["floor", "--raw"]),
    # the socket layer's hooks instead: no syscall of any task takes the traced path
    "floor-sock": ("empty BPF on the socket layer's hooks", ["floor", "--sock"]),
    # the socket layer's hooks copying every message out: the least a socket-layer trace costs
    "floor-sock-copy": ("the socket layer's hooks, copying every message to a ring buffer",
                        ["floor", "--sock-copy"]),
}
DEFAULT_CONFIGS = "bare,trace,errors,slow,top,strace,floor,floor-sock,floor-sock-copy"
NLBPF_CONFIGS = ("trace", "errors", "slow", "top", "serve")
# NAME@LAYER: an nlbpf configuration on a given hook layer
LAYER_ARGS = {"syscall": ["--hooks", "syscall"],
              "fentry": ["--hooks", "kernel", "--kernel-probe", "fentry"],
              "kprobe": ["--hooks", "kernel", "--kernel-probe", "kprobe"]}
WORKLOADS = {
    "batch": "ip -batch: 10k route add + 10k del",
    "getlink": "RTM_GETLINK loop",
    "dump": "50k-route dump",           # --dump-count of them
    "other": "other syscalls (dd: one-byte reads and writes)",
}


def thousands(n):
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def label_workloads(args):
    """The tables' workload names, with the sizes this run used."""
    WORKLOADS["batch"] = (f"ip -batch: {thousands(args.batch_routes)} route add + "
                          f"{thousands(args.batch_routes)} del")
    WORKLOADS["getlink"] = f"RTM_GETLINK loop ({thousands(args.getlink_count)})"
    dumps = f" ×{args.dump_count}" if args.dump_count > 1 else ""
    WORKLOADS["dump"] = f"{thousands(args.dump_routes)}-route dump{dumps}"
    WORKLOADS["other"] = (f"other syscalls (dd: {thousands(args.other_count)} one-byte reads "
                          f"and writes)")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(*argv, check=True, **kw):
    return subprocess.run(list(map(str, argv)), check=check, capture_output=True, text=True, **kw)


# ----------------------------------------------------------------- the machine

def cpu_times():
    with open("/proc/stat") as f:
        vals = list(map(int, f.readline().split()[1:]))
    idle = vals[3] + vals[4]
    return sum(vals[:8]), idle


def cpu_busy_s():
    """Busy CPU seconds of the whole machine so far (all CPUs)."""
    total, idle = cpu_times()
    return (total - idle) / CLK_TCK


def busy_fraction(seconds=0.5):
    t1, i1 = cpu_times()
    time.sleep(seconds)
    t2, i2 = cpu_times()
    return 1 - (i2 - i1) / max(1, t2 - t1)


def foreign_tracing_progs():
    """Tracing BPF programs loaded on this machine (someone else's tracer: it would slow every
    configuration, bare included). Programs no process holds are left out: those of the
    tracer this script just stopped, still being freed, are not someone else's load."""
    try:
        out = sh("bpftool", "prog", "show", "-j", check=False).stdout
        return [p for p in json.loads(out or "[]")
                if p.get("type") in TRACING_PROG_TYPES and p.get("pids")]
    except (OSError, ValueError):
        return []


class Gate:
    """Waits before each run until no other tracer is loaded and the CPUs are idle."""

    def __init__(self, timeout, max_busy):
        self.timeout = timeout
        self.max_busy = max_busy
        self.waited = 0.0
        self.noisy = 0

    def wait(self):
        """Someone else's probes on the same syscalls would slow every configuration, bare
        included: wait for them to go. Other CPU load is recorded; the runs themselves are
        at nice -20, so it does not time-slice them (--max-busy makes the gate wait for
        idle CPUs too)."""
        start = time.monotonic()
        quiet_in_a_row = 0
        busy, progs = 1.0, []
        while time.monotonic() - start < self.timeout:
            progs = foreign_tracing_progs()
            busy = busy_fraction(0.5)
            if not progs and busy <= self.max_busy:
                quiet_in_a_row += 1
                if quiet_in_a_row >= 2:
                    self.waited += time.monotonic() - start
                    return {"quiet": True, "busy": round(busy, 3)}
            else:
                quiet_in_a_row = 0
                time.sleep(1.0)
        self.waited += time.monotonic() - start
        self.noisy += 1
        log(f"  (still {len(progs)} foreign tracing programs, {busy:.0%} CPU busy after "
            f"{self.timeout:.0f}s; running anyway, marked noisy)")
        return {"quiet": False, "busy": round(busy, 3), "foreign_progs": len(progs)}

    def after(self, res):
        """Foreign probes loaded while the run went on make it noisy too."""
        progs = foreign_tracing_progs()
        if progs and res["gate"]["quiet"]:
            res["gate"] = dict(res["gate"], quiet=False, foreign_progs_after=len(progs))


# --------------------------------------------------------------- processes

def proc_cpu_s(pid):
    """user+sys seconds of a process (all its threads, and its children once it has
    waited for them: trace --spool's capture child) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_mb(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def family_rss_mb(pid, key="VmRSS"):
    """RSS of a process and its children (trace's capture child holds bcc and LLVM):
    summed, so pages they share count twice; None if pid is gone."""
    total = proc_rss_mb(pid, key)
    if total is None:
        return None
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(family_rss_mb(int(k), key) or 0 for k in kids)
    return total


def wait_no_reap(pid, timeout):
    """Wait for pid to exit without reaping it, so /proc/PID/stat still has its CPU times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        time.sleep(0.01)
    return False


class Monitor(threading.Thread):
    """Samples a process's RSS (with its children's) while it runs."""

    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.every = every
        self.max_rss = 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            rss = family_rss_mb(self.pid)
            if rss:
                self.max_rss = max(self.max_rss, rss)
            self.stop.wait(self.every)


DRAIN_S = 600


class Tracer:
    """One nlbpf process: started, timed to its Tracing line, stopped with SIGINT."""

    def __init__(self, cmd, args, stdout_path, tree=None):
        self.out_path = stdout_path
        self.out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        self.t_start = time.monotonic()
        # once stopped, nlbpf shows what it captured for --drain seconds (2 by default)
        # and counts the rest as not shown: here all of it is shown, since what was
        # captured is what is measured
        self.proc = subprocess.Popen(cmd + args, stdout=self.out, stderr=subprocess.PIPE,
                                     cwd=str(tree) if tree else cmd_cwd(cmd),
                                     env={**os.environ, "NLBPF_DRAIN": str(DRAIN_S)})
        self.lines = []
        self.ready_at = None
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if TRACING_LINE in line and self.ready_at is None:
                self.ready_at = time.monotonic()
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout=120):
        if not self.ready.wait(timeout) or self.ready_at is None:
            self.kill()
            raise RuntimeError("nlbpf did not start:\n" + "".join(self.lines[-20:]))
        self.cpu_at_ready = proc_cpu_s(self.proc.pid) or 0.0
        self.monitor = Monitor(self.proc.pid)
        self.monitor.start()
        return self.ready_at - self.t_start

    def stop(self, timeout=600):
        """SIGINT; returns (seconds until it exited, cpu seconds since ready, total cpu)."""
        rss_end = family_rss_mb(self.proc.pid)
        hwm = family_rss_mb(self.proc.pid, "VmHWM")
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        if not wait_no_reap(self.proc.pid, timeout):
            self.kill()
            raise RuntimeError("nlbpf did not exit after SIGINT")
        drain = time.monotonic() - t0
        cpu_total = proc_cpu_s(self.proc.pid)
        self.monitor.stop.set()
        self.proc.wait()
        self.reader.join(5)
        if self.out is not subprocess.DEVNULL:
            self.out.close()
        return {"exit_s": drain, "cpu_s": (cpu_total or 0) - self.cpu_at_ready,
                "cpu_total_s": cpu_total, "rss_mb": max(self.monitor.max_rss, rss_end or 0),
                "peak_rss_mb": hwm, "rc": self.proc.returncode}

    def closing(self):
        """records made, events the kernel handed over (shown or not), lost."""
        for line in reversed(self.lines):
            m = CLOSING_RE.match(line)
            if m:
                return {"records": int(m[1]), "events": int(m[2]) + int(m[3]),
                        "lost": int(m[4])}
            m = OLD_CLOSING_RE.match(line)
            if m:
                return {"records": int(m[1]), "events": int(m[2]), "lost": int(m[3])}
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cmd_cwd(cmd):
    # `python -m nlbpf.cli` imports nlbpf from the working directory: the tree under test
    return str(NLBPF_TREE) if "-m" in cmd else None


# -------------------------------------------------------------- workloads

class Env:
    """The namespaces and files the workloads use."""

    def __init__(self, batch_routes, fail_deletes, dump_routes, python):
        tag = uuid.uuid4().hex[:6]
        self.ns = f"nlbench-{tag}"
        self.dump_ns = f"nlbench-{tag}-dump"
        self.tp_ns = f"nlbench-{tag}-tp"
        self.dir = Path(tempfile.mkdtemp(prefix="nlbench-", dir=SHM))
        self.python = python
        self.batch_routes = batch_routes
        self.fail_deletes = fail_deletes
        self.dump_routes = dump_routes
        self.made = []

    def __enter__(self):
        for ns in (self.ns, self.dump_ns, self.tp_ns):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        n, fails = self.batch_routes, self.fail_deletes
        lines = [f"route add blackhole 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32"
                 for i in range(n)]
        every = n // fails if fails else 0
        for i in range(n):
            lines.append(f"route del blackhole 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32")
            if every and i % every == every - 1 and (i // every) < fails:
                lines.append(f"route del blackhole 172.31.{i // 256 % 256}.{i % 256}/32")
        self.batch_file = self.dir / "batch.txt"
        self.batch_file.write_text("\n".join(lines) + "\n")
        self.batch_requests = len(lines)
        routes = self.dir / "routes.txt"
        routes.write_text("".join(f"route add blackhole 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32\n"
                                  for i in range(self.dump_routes)))
        sh("ip", "-n", self.dump_ns, "-batch", routes)
        return self

    def __exit__(self, *exc):
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def workload_argv(env, name, getlink_count, other_count=1_000_000, dump_count=1):
    if name == "other":
        return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={other_count}"]
    if name == "batch":
        return ["ip", "-n", env.ns, "-force", "-batch", str(env.batch_file)]
    if name == "getlink":
        return ["ip", "netns", "exec", env.ns, env.python, str(NLLOAD), "getlink", str(getlink_count)]
    if name == "dump":
        return ["ip", "netns", "exec", env.dump_ns, env.python, str(NLLOAD), "dump", str(dump_count)]
    raise ValueError(name)


def strace_argv(argv, out):
    """strace -f on the workload process itself (inside its namespace)."""
    st = ["strace", "-f", "-e", "trace=%network", "-o", str(out)]
    if argv[:3] == ["ip", "netns", "exec"]:
        return argv[:4] + st + argv[4:]
    return st + argv


def run_workload(argv, timeout=600, tracer_pid=None):
    """Run the workload; returns pid, rc, wall seconds, its JSON line, stderr, and the CPU
    seconds other processes used meanwhile (machine busy time less the workload's and the
    tracer's own)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tr0 = proc_cpu_s(tracer_pid) if tracer_pid else 0.0
    busy0 = cpu_busy_s()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout)
    wall = time.monotonic() - t0
    busy = cpu_busy_s() - busy0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tr1 = proc_cpu_s(tracer_pid) if tracer_pid else 0.0
    child_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    ours = child_cpu + ((tr1 or 0) - (tr0 or 0))
    foreign = max(0.0, busy - ours)
    info = {}
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            info = json.loads(line)
            break
    info.setdefault("process_cpu_seconds", child_cpu)
    return p.pid, p.returncode, wall, info, err, foreign


def expected(env, name, info):
    """Messages the workload exchanged, and failures it caused."""
    if name == "batch":
        return {"messages": 2 * env.batch_requests, "failures": env.fail_deletes}
    return {"messages": info.get("messages", 0), "failures": info.get("errors", 0)}


def pid_lines(path, pid):
    """The JSON lines of nlbpf's output that may be this pid's (a cheap byte test first:
    parsing every line of a big trace costs more than the run; compact or spaced JSON)."""
    tags = (b'"pid": %d,' % pid, b'"pid":%d,' % pid)
    with open(path, "rb") as f:
        for raw in f:
            if tags[0] in raw or tags[1] in raw:
                rec = json.loads(raw)
                if rec.get("pid") == pid:
                    yield rec


def count_trace(path, pid, name):
    """Records of the workload in trace --json output (the batch: route requests and their
    NLMSG_ERROR replies, which is everything ip exchanges for a route command). The
    notifications its requests cause (seen by the kernel layer, in ip's context) are
    not messages it exchanged."""
    n = other = 0
    for rec in pid_lines(path, pid):
        if rec.get("direction") == "notify":
            other += 1
        elif name != "batch" or rec.get("type") in ("RTM_NEWROUTE", "RTM_DELROUTE", "NLMSG_ERROR"):
            n += 1
        else:
            other += 1
    return n, other


def count_errors(path, pid):
    return sum(bool(rec.get("errno")) for rec in pid_lines(path, pid))


def count_records(path, pid):
    return sum(1 for _ in pid_lines(path, pid))


def count_top(path, pid):
    msgs = 0
    lost = 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                snap = json.loads(raw)
            except ValueError:
                continue
            lost = max(lost, snap.get("total_lost", 0))
            for row in snap.get("rows", []):
                if row.get("pid") == pid:
                    msgs += row.get("msgs_in", 0) + row.get("msgs_out", 0)
    return msgs, lost


def count_served(env):
    """serve's messages in the workloads' namespaces, and what it lost, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{SERVE_PORT}/metrics", timeout=10) as r:
        text = r.read().decode()
    msgs = lost = 0
    spaces = {env.ns, env.dump_ns}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "nlbpf_messages_total" and s.labels.get("netns") in spaces:
                msgs += s.value
            elif s.name == "nlbpf_events_lost_total":
                lost += s.value
    return int(msgs), {"lost": int(lost)}


NLMSG_RE = re.compile(rb"(msg=\[?)?\{nlmsg_len=")


def count_strace(path):
    """Netlink messages strace printed (top-level headers; an ACK's echoed header is not one)."""
    shown = unnamed = 0
    with open(path, "rb") as f:
        for raw in f:
            for m in NLMSG_RE.finditer(raw):
                if m.group(1) is None:
                    shown += 1
            unnamed += raw.count(b"NLMSG_???")
    return shown, unnamed


def one_run(env, name, config, args, gate, rep):
    label, nl_args = CONFIGS[config]
    gate_info = gate.wait()
    argv = workload_argv(env, name, args.getlink_count, args.other_count, args.dump_count)
    res = {"workload": name, "config": config, "rep": rep, "gate": gate_info}
    out_path = env.dir / f"{name}-{config}-{rep}.out"
    tracer = None
    try:
        if nl_args and nl_args[0] == "floor":
            tracer = Tracer([sys.executable, str(BENCH / "floor.py")], nl_args[1:], None)
            res["attach_s"] = tracer.wait_ready()
            time.sleep(0.2)
        elif nl_args is not None:
            tracer = Tracer(NLBPF_CMD, nl_args, out_path, tree=CONFIG_TREES.get(config))
            res["attach_s"] = tracer.wait_ready()
            time.sleep(0.2)     # let the first poll start
        if config == "strace":
            argv = strace_argv(argv, out_path)
        pid, rc, wall, info, err, foreign = run_workload(
            argv, tracer_pid=tracer.proc.pid if tracer is not None else None)
        res.update(pid=pid, rc=rc, wall_s=wall, info=info, foreign_cpu_s=round(foreign, 3))

        res["timed_s"] = info.get("seconds", wall) if name not in ("batch", "other") else wall
        # CPU time: what runs inside the workload's syscalls (the probes) shows; time
        # other processes held the CPU does not (the batch: ip's whole life; the Python
        # clients: their netlink loop). strace's cost is mostly waiting, not this.
        res["cpu_timed_s"] = info.get("cpu_seconds", info.get("process_cpu_seconds"))
        exp = expected(env, name, info)
        res["expected"] = exp
        if name == "batch" and rc not in (0, 1):
            raise RuntimeError(f"ip -batch failed ({rc}): {err[:300]}")
        if name != "batch" and (rc != 0 or (name != "other" and not info)):
            raise RuntimeError(f"{' '.join(argv)} failed ({rc}): {err[:300]}")
        if tracer is not None:
            # top prints what it counted at its next refresh; the others have it already
            base = base_config(config)
            time.sleep(1.2 if base in ("top", "serve") else 0.3)
            served = count_served(env) if base == "serve" else None
            res.update(tracer.stop())
            res["closing"] = tracer.closing()
            if base == "trace":
                res["captured"], res["extra"] = count_trace(out_path, pid, name)
                res["want"] = exp["messages"]
            elif base == "errors":
                res["captured"] = count_errors(out_path, pid)
                res["want"] = exp["failures"]
            elif base == "slow":
                res["captured"] = count_records(out_path, pid)
                res["want"] = 0         # nothing here takes 500 ms
            elif base == "serve":
                # scraped before it stopped
                res["captured"], res["closing"] = served
                res["want"] = exp["messages"]
            elif base == "top":
                res["captured"], lost = count_top(out_path, pid)
                res["want"] = exp["messages"]
                res["closing"] = {"lost": lost}
        elif config == "strace":
            shown, unnamed = count_strace(out_path)
            res.update(captured=shown, want=exp["messages"], unnamed=unnamed)
    finally:
        if tracer is not None:
            tracer.kill()
        if out_path.exists():
            out_path.unlink()
    gate.after(res)
    return res


# ------------------------------------------------------------- throughput

def throughput_step(env, rate, seconds, mix, senders, gate, tree=None, command="trace"):
    g = gate.wait()
    sh("ip", "-n", env.tp_ns, "route", "flush", "type", "blackhole", check=False)
    capfile = Path(tempfile.gettempdir()) / f"nlbench-tp-{os.getpid()}.pcapng"
    argv = [a.format(file=capfile) for a in TP_COMMANDS[command][1]]
    tracer = Tracer(NLBPF_CMD, argv, None, tree=tree)      # stdout > /dev/null
    try:
        attach = tracer.wait_ready()
        time.sleep(0.2)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        tr0 = proc_cpu_s(tracer.proc.pid) or 0.0
        busy0 = cpu_busy_s()
        procs = [subprocess.Popen(["ip", "netns", "exec", env.tp_ns, env.python, str(NLLOAD),
                                   "paced", str(rate / senders), str(seconds), mix],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(senders)]
        infos = []
        for p in procs:
            out, err = p.communicate(timeout=seconds + 120)
            if p.returncode != 0:
                raise RuntimeError(f"paced sender failed: {err[:300]}")
            infos.append(json.loads(out.strip().splitlines()[-1]))
        busy = cpu_busy_s() - busy0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
                + (proc_cpu_s(tracer.proc.pid) or 0.0) - tr0)
        foreign = max(0.0, busy - ours)
        time.sleep(0.3)
        stop = tracer.stop()
        closing = tracer.closing() or {}
    finally:
        tracer.kill()
        capfile.unlink(missing_ok=True)
    messages = sum(i["messages"] for i in infos)
    span = max(i["seconds"] for i in infos)
    quiet = g["quiet"] and not foreign_tracing_progs()
    return {"target": rate, "mix": mix, "senders": senders, "seconds": span,
            "tree": "compare" if tree else "main", "command": command,
            "messages": messages, "achieved": messages / span, "attach_s": attach,
            "records": closing.get("records"), "events": closing.get("events"),
            "lost": closing.get("lost"), "drain_s": stop["exit_s"], "cpu_s": stop["cpu_s"],
            "rss_mb": stop["rss_mb"], "foreign_cpu_s": round(foreign, 2),
            "quiet": quiet}


def throughput(env, args, gate, tree=None):
    """Rising rates until two in a row lose events, then bisect between the last clean
    rate and the first lossy one; per command and mix."""
    steps = []
    for command in args.tp_commands:
        steps += throughput_of(env, args, gate, tree, command)
    return steps


def throughput_of(env, args, gate, tree, command):
    steps = []
    label = f" ({args.compare_label})" if tree else ""
    label = f" {command}{label}"
    for mix in args.tp_mix:
        results = []
        for rate in args.tp_rates:
            log(f"throughput {mix}{label}: {rate:,.0f} msgs/s for {args.tp_seconds:g}s ...")
            r = throughput_step(env, rate, args.tp_seconds, mix, args.tp_senders, gate, tree,
                                command)
            log(f"  achieved {r['achieved']:,.0f}/s, {r['events']} events, {r['lost']} lost, "
                f"drain {r['drain_s']:.1f}s")
            results.append(r)
            if sum(1 for x in results[-2:] if x["lost"]) == 2:
                break
        clean = [r for r in results if r["lost"] == 0]
        lossy = [r for r in results if r["lost"]]
        lo = max((r["achieved"] for r in clean), default=0)
        hi = min((r["target"] for r in lossy if r["target"] > lo), default=None)
        for _ in range(args.tp_bisect if hi else 0):
            mid = (lo + hi) / 2
            log(f"throughput {mix}{label}: bisect {mid:,.0f} msgs/s ...")
            r = throughput_step(env, mid, args.tp_seconds, mix, args.tp_senders, gate, tree,
                                command)
            log(f"  achieved {r['achieved']:,.0f}/s, {r['lost']} lost")
            results.append(r)
            if r["lost"]:
                hi = mid
            else:
                lo = max(lo, r["achieved"])
        steps.extend(sorted(results, key=lambda r: r["target"]))
    return steps


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ratio(rs):
    rs = [r for r in rs if r is not None]
    if not rs:
        return "-"
    return f"{statistics.median(rs):.2f}× ({min(rs):.2f}–{max(rs):.2f})"


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def summarize(runs, workloads, configs):
    """Per (workload, config): paired ratios to bare (same repetition), rates, capture, cost."""
    by = {}
    for r in runs:
        by.setdefault((r["workload"], r["config"]), []).append(r)
    out = {}
    for w in workloads:
        bare_all = by.get((w, "bare"), [])
        bare_quiet = [r for r in bare_all if r["gate"]["quiet"]]
        for c in configs:
            rs_all = by.get((w, c), [])
            if not rs_all:
                continue
            # runs someone else's load overlapped are left out when there are enough others
            quiet = [r for r in rs_all if r["gate"]["quiet"]]
            rs = quiet if len(quiet) >= QUIET_MIN else rs_all
            bare = {r["rep"]: r["timed_s"]
                    for r in (bare_quiet if len(bare_quiet) >= QUIET_MIN else bare_all)}
            ratios = [r["timed_s"] / bare[r["rep"]] for r in rs if r["rep"] in bare]
            if len(ratios) < min(QUIET_MIN, len(rs)):
                # too few pairs from the same repetition: against the median bare run
                ratios = [r["timed_s"] / statistics.median(bare.values()) for r in rs]
            # CPU-time ratios pair every run with the median bare run: CPU time hardly
            # moves with other load, so pairing by repetition buys nothing
            bare_cpu = med([r.get("cpu_timed_s") for r in bare_all])
            cpu_ratios = [r["cpu_timed_s"] / bare_cpu for r in rs_all
                          if r.get("cpu_timed_s") and bare_cpu]
            msgs = med([r["expected"]["messages"] for r in rs])
            s = {"n": len(rs), "ratios": ratios, "ratio_median": med(ratios),
                 "cpu_ratios": cpu_ratios, "cpu_ratio_median": med(cpu_ratios),
                 "timed_s_median": med([r["timed_s"] for r in rs]),
                 "msgs": msgs,
                 "rate": med([r["expected"]["messages"] / r["timed_s"] for r in rs]),
                 "used": len(rs), "runs": len(rs_all), "quiet": len(quiet)}
            if c != "bare":
                s["captured"] = sum(r.get("captured", 0) for r in rs)
                s["want"] = sum(r.get("want", 0) for r in rs)
                s["lost"] = sum(((r.get("closing") or {}).get("lost") or 0) for r in rs)
                s["events"] = sum(((r.get("closing") or {}).get("events") or 0) for r in rs)
                s["unnamed"] = sum(r.get("unnamed", 0) for r in rs)
            if CONFIGS[c][1] is not None:
                s.update(cpu_s=med([r["cpu_s"] for r in rs]), rss_mb=med([r["rss_mb"] for r in rs]),
                         peak_rss_mb=med([r["peak_rss_mb"] for r in rs]),
                         attach_s=med([r["attach_s"] for r in rs]),
                         attach_max=max(r["attach_s"] for r in rs),
                         exit_s=med([r["exit_s"] for r in rs]))
            out[(w, c)] = s
    return out


def base_config(config):
    """trace-cmp (run from --compare-tree), trace@fentry, trace-spool, trace-live and
    trace-2048/4096 (a longer --snaplen) count like trace."""
    config = config.split("@")[0]
    config = config[:-4] if config.endswith("-cmp") else config
    return "trace" if config in ("trace-spool", "trace-live", "trace-2048", "trace-4096") else config


def layered_config(name):
    """CONFIGS entry for NAME@LAYER, or None if name is not one."""
    base, _, layer = name.partition("@")
    if not layer or base not in NLBPF_CONFIGS or layer not in LAYER_ARGS:
        return None
    return (f"{CONFIGS[base][0]} ({layer} layer)", CONFIGS[base][1] + LAYER_ARGS[layer])


def is_floor(config):
    """floor, floor-raw: empty programs, not nlbpf"""
    return config.startswith("floor")


def capture_text(s, config):
    config = base_config(config)
    if config == "bare" or is_floor(config):
        return "-"
    if config == "slow":
        return f"{s['captured']} reported (none expected), {s['events']} kernel events"
    want = s["want"]
    pct = f"{100 * s['captured'] / want:.1f}%" if want else "n/a"
    text = f"{pct} ({s['captured']:,}/{want:,})"
    if config == "strace" and s.get("unnamed"):
        text += f", {s['unnamed']:,} typed NLMSG_???"
    if config == "errors" and not want:
        text = f"{s['captured']} reported (none expected)"
    return text


def ratio_table(summary, workloads, configs, key, bare_cell):
    """One row per configuration, one column per workload: the `key` ratios to bare."""
    lines = ["| configuration | " + " | ".join(WORKLOADS[w] for w in workloads) + " |",
             "|---|" + "---|" * len(workloads)]
    for c in configs:
        cells = []
        for w in workloads:
            s = summary.get((w, c))
            if s is None or not s[key]:
                cells.append("-")
            elif c == "bare":
                cells.append(bare_cell(s))
            else:
                cells.append(fmt_ratio(s[key]))
        lines.append(f"| {CONFIGS[c][0]} | " + " | ".join(cells) + " |")
    return lines


def tables(summary, workloads, configs, tp):
    if not summary:         # --tp-only: no workload ran
        return throughput_table(tp)
    lines = ["### Workload time, ratio to bare (median of paired runs, min–max)", ""]
    lines += ratio_table(summary, workloads, configs, "ratios",
                         lambda s: f"1.00× ({fmt_rate(s['rate'])} msgs/s)" if s["rate"] else "1.00×")
    lines += ["", "### Workload CPU time (user+sys), ratio to bare (median, min–max)", "",
              "The probes run inside the workload's own syscalls, so their cost is in its CPU "
              "time; time other processes held the CPU is not. On a shared machine this is "
              "the steadier measure of the in-kernel overhead; it does not show strace's "
              "cost (stopped time) or CPU contention with the tracer's reader.", ""]
    lines += ratio_table(summary, workloads, configs, "cpu_ratios", lambda s: "1.00×")
    lines += ["", "### Messages per second, capture, and nlbpf's own cost (medians)", "",
              "nlbpf's CPU and RSS include its children's (trace's capture child); RSS "
              "is summed, so pages they share count twice.", "",
              "| workload | configuration | msgs/s | captured | lost | CPU s | RSS MB | attach s | exit after SIGINT s | quiet runs |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for w in workloads:
        for c in configs:
            s = summary.get((w, c))
            if s is None:
                continue
            nl = CONFIGS[c][1] is not None
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                WORKLOADS[w], CONFIGS[c][0], fmt_rate(s["rate"]), capture_text(s, c),
                s.get("lost", "-") if c not in ("bare", "strace") and not is_floor(c) else "-",
                f"{s['cpu_s']:.2f}" if nl else "-",
                f"{s['rss_mb']:.0f}" if nl else "-",
                f"{s['attach_s']:.2f} (max {s['attach_max']:.2f})" if nl else "-",
                f"{s['exit_s']:.2f}" if nl else "-",
                f"{s['quiet']}/{s['runs']}"))
    return "\n".join(lines + ["", throughput_table(tp)]) if tp else "\n".join(lines)


def throughput_table(tp):
    lines = []
    if tp:
        lines += ["### Throughput: nlbpf against paced senders", "",
                  "| nlbpf | command | mix | target msgs/s | achieved msgs/s | kernel events | lost | lost % | exit after SIGINT s | nlbpf CPU s | others' CPU s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in tp:
            ev = r["events"] or 0
            lost = r["lost"] or 0
            pct = f"{100 * lost / (ev + lost):.1f}%" if ev + lost else "-"
            cmd = TP_COMMANDS[r.get("command", "trace")][0]
            lines.append(f"| {TREE_LABELS.get(r.get('tree'), '')} | `{cmd}` | {r['mix']} | {fmt_rate(r['target'])} | {fmt_rate(r['achieved'])} | "
                         f"{ev:,} | {lost:,} | {pct} | {r['drain_s']:.1f} | {r['cpu_s']:.1f} | "
                         f"{r['foreign_cpu_s']:.1f} |")
    return "\n".join(lines)


def targets(summary, workloads, tp):
    def worst(c, key="ratio_median"):
        rs = [summary[(w, c)][key] for w in workloads
              if (w, c) in summary and summary[(w, c)][key] is not None]
        return max(rs) if rs else None

    def cpu_note(c):
        t = worst(c, "cpu_ratio_median")
        return f" (workload CPU time: worst median {t:.2f}×)" if t is not None else ""
    out = []
    configs = sorted({c for (w, c) in summary if not c.endswith("-cmp")},
                     key=lambda c: (NLBPF_CONFIGS.index(base_config(c))
                                    if base_config(c) in NLBPF_CONFIGS else -1, c))
    for c in configs:
        base, t = base_config(c), worst(c)
        on = f" on the {c.partition('@')[2]} layer" if "@" in c else (
            f" ({CONFIGS[c][0]})" if c in CONFIGS and c != base else "")
        if t is None or base not in NLBPF_CONFIGS:
            continue
        if base == "trace":
            cap = [(summary[(w, c)]["captured"], summary[(w, c)]["want"]) for w in workloads
                   if (w, c) in summary]
            out.append((f"trace ≤ 1.05× bare, 100% captured{on}",
                        t <= 1.05 and all(a == b for a, b in cap),
                        f"worst median {t:.2f}×{cpu_note(c)}; captured " +
                        ", ".join(f"{a:,}/{b:,}" for a, b in cap)))
        else:
            out.append((f"{base} ≤ 1.02× bare{on}", t <= 1.02, f"worst median {t:.2f}×{cpu_note(c)}"))
    for c in ("floor", "floor-raw", "floor-sock", "floor-sock-copy"):
        t = worst(c)
        if t is not None:
            out.append((CONFIGS[c][0], None,
                        f"worst median {t:.2f}×{cpu_note(c)}"))
    tp = [r for r in tp or [] if r.get("tree", "main") == "main"]
    if tp:
        for cmd, mix in sorted({(r.get("command", "trace"), r["mix"]) for r in tp}):
            clean = [r["achieved"] for r in tp if r["mix"] == mix and r["lost"] == 0
                     and r.get("command", "trace") == cmd]
            best = max(clean, default=0)
            out.append((f"zero loss at ≥ 200k msgs/s ({cmd}, {mix} mix)", best >= 200_000,
                        f"highest clean rate {fmt_rate(best)} msgs/s"))
    nl = [s for (w, c), s in summary.items()
          if "attach_max" in s and not is_floor(c) and not c.endswith("-cmp")]
    if nl:
        att = max(s["attach_max"] for s in nl)
        out.append(("attach ≤ 2 s", att <= 2.0,
                    f"median {med([s['attach_s'] for s in nl]):.2f}s, max {att:.2f}s"))
    return out


# ------------------------------------------------------------------ main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workloads", default="batch,getlink,dump")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    ap.add_argument("--batch-routes", type=int, default=10000)
    ap.add_argument("--fail-deletes", type=int, default=100)
    ap.add_argument("--getlink-count", type=int, default=10000)
    ap.add_argument("--dump-routes", type=int, default=50000)
    ap.add_argument("--dump-count", type=int, default=1,
                    help="dumps of the table per run (a longer run averages more noise out)")
    ap.add_argument("--other-count", type=int, default=1_000_000,
                    help="bytes dd copies one at a time in the `other` workload")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--tp-only", action="store_true", help="only the throughput test")
    ap.add_argument("--tp-rates", default="2000,5000,10000,20000,50000,100000,200000")
    ap.add_argument("--tp-seconds", type=float, default=10.0)
    ap.add_argument("--tp-mix", default="route,getlink",
                    help="route: distinct route add/del; getlink: the same request repeated")
    ap.add_argument("--tp-senders", type=int, default=2)
    ap.add_argument("--tp-commands", default="trace,record",
                    help="trace: trace --json > /dev/null (decodes every message); "
                         "record: record -w FILE (raw pcapng, decoded later by nlbpf read)")
    ap.add_argument("--tp-bisect", type=int, default=2)
    ap.add_argument("--tree", default=str(REPO),
                    help="nlbpf source tree to run (`python -m nlbpf.cli` from there)")
    ap.add_argument("--compare-tree", default=None,
                    help="another nlbpf tree (e.g. before a change): adds the configuration "
                         "<config>-cmp (--compare-configs), run from it, interleaved with the others")
    ap.add_argument("--compare-label", default="before")
    ap.add_argument("--compare-configs", default="trace",
                    help="which nlbpf configurations also run from --compare-tree "
                         "(comma-separated: trace,errors,slow,top)")
    ap.add_argument("--tp-compare", action="store_true",
                    help="run the throughput test from --compare-tree too")
    ap.add_argument("--quiet-timeout", type=float, default=300.0)
    ap.add_argument("--max-busy", type=float, default=1.0,
                    help="CPU busy fraction the gate accepts before a run (default: any; "
                         "the runs are at nice -20)")
    ap.add_argument("--nice", type=int, default=-20,
                    help="niceness of the workloads and tracers (they inherit it)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--json-out", default=str(BENCH / "results.json"))
    ap.add_argument("--label", default="", help="a note for RESULTS.md (e.g. before/after)")
    ap.add_argument("--machine", default="KVM guest; syscall tracepoint layer (this kernel "
                    "refuses fentry and has no kprobes)",
                    help="what RESULTS.md says of the machine and hook layer")
    a = ap.parse_args(argv)
    a.workloads = [w for w in a.workloads.split(",") if w]
    a.configs = [c for c in a.configs.split(",") if c]
    a.tp_rates = [float(x) for x in a.tp_rates.split(",")]
    a.tp_mix = [m for m in a.tp_mix.split(",") if m]
    a.tp_commands = [c for c in a.tp_commands.split(",") if c]
    for c in a.tp_commands:
        if c not in TP_COMMANDS:
            ap.error(f"unknown throughput command {c} (trace, record)")
    for w in a.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
    for c in a.configs:
        if c not in CONFIGS:
            entry = layered_config(c)
            if entry is None:
                ap.error(f"unknown configuration {c} (NAME or NAME@LAYER: "
                         f"{', '.join(NLBPF_CONFIGS)} @ {', '.join(LAYER_ARGS)})")
            CONFIGS[c] = entry
    if "bare" not in a.configs:
        a.configs.insert(0, "bare")
    TREE_LABELS["compare"] = a.compare_label
    TREE_LABELS["main"] = a.label or "this tree"
    if a.compare_tree:
        for base in a.compare_configs.split(","):
            if base not in NLBPF_CONFIGS:
                ap.error(f"--compare-configs: {base} is not an nlbpf configuration")
            name = f"{base}-cmp"
            CONFIGS[name] = (f"{CONFIGS[base][0]} ({a.compare_label})", CONFIGS[base][1])
            CONFIG_TREES[name] = Path(a.compare_tree).resolve()
            if name not in a.configs:
                a.configs.insert(a.configs.index(base) + 1 if base in a.configs else 1, name)
    return a


NLBPF_TREE = REPO
NLBPF_CMD = [sys.executable, "-m", "nlbpf.cli"]
CONFIG_TREES = {}           # configuration -> the tree it runs nlbpf from, if not --tree
TREE_LABELS = {"main": "this tree"}


def main(argv=None):
    global NLBPF_TREE
    args = parse_args(argv if argv is not None else sys.argv[1:])
    label_workloads(args)
    if os.geteuid() != 0:
        sys.exit("bench/run.py needs root (it loads probes and creates network namespaces)")
    for tool in ("ip", "bpftool") + (("strace",) if "strace" in args.configs else ()):
        if not shutil.which(tool):
            sys.exit(f"bench/run.py needs {tool}")
    NLBPF_TREE = Path(args.tree).resolve()
    # this VM is shared: at nice -20 other users' background jobs do not time-slice the
    # workloads and tracers (bare and traced runs alike)
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    random.seed(args.seed)
    gate = Gate(args.quiet_timeout, args.max_busy)
    started = datetime.now(timezone.utc)
    runs, tp = [], []
    # SIGTERM: clean up the namespaces like Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with Env(args.batch_routes, args.fail_deletes, args.dump_routes, sys.executable) as env:
        if not args.tp_only:
            plan = [(w, c) for w in args.workloads for c in args.configs]
            for rep in range(args.reps):
                order = plan[:]
                random.shuffle(order)
                for i, (w, c) in enumerate(order):
                    log(f"rep {rep + 1}/{args.reps} [{i + 1}/{len(order)}] {w} / {c}")
                    r = one_run(env, w, c, args, gate, rep)
                    log(f"  {r['timed_s']:.3f}s" + (f", attach {r['attach_s']:.2f}s" if "attach_s" in r else "")
                        + (f", captured {r['captured']}/{r['want']}" if "want" in r else "")
                        + (f", {r['closing']}" if r.get("closing") else ""))
                    runs.append(r)
        if not args.no_throughput:
            tp = throughput(env, args, gate)
            if args.compare_tree and args.tp_compare:
                tp += throughput(env, args, gate, tree=Path(args.compare_tree).resolve())
    summary = summarize(runs, args.workloads, args.configs)
    text = tables(summary, args.workloads, args.configs, tp)
    verdicts = targets(summary, args.workloads, tp)
    print(text)
    print()
    for name, ok, why in verdicts:
        print(f"- {'met' if ok else 'MISSED' if ok is not None else 'info'}: {name} — {why}")
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "command": "sudo .venv/bin/python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tree": str(NLBPF_TREE),
        "commit": tree_commit(NLBPF_TREE),
        "gate_waited_s": round(gate.waited, 1),
        "noisy_runs": sum(not r["gate"]["quiet"] for r in runs) + sum(not r["quiet"] for r in tp),
        "label": args.label,
        "machine": args.machine,
    }
    Path(args.json_out).write_text(json.dumps({"meta": meta, "runs": runs, "throughput": tp,
                                               "summary": {f"{w}/{c}": s for (w, c), s in summary.items()}},
                                              indent=1, default=str))
    write_results(Path(args.out), meta, text, verdicts, args)
    log(f"wrote {args.out} and {args.json_out}")


def tree_commit(tree):
    note = tree / "COMMIT"
    if note.exists():
        return note.read_text().strip()
    if not shutil.which("git"):         # the VM's image has none (vm/run-tests.sh --layers bench)
        return "?"
    r = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def write_results(path, meta, text, verdicts, args):
    lines = [f"# nlbpf benchmark results{' — ' + meta['label'] if meta['label'] else ''}", "",
             f"- command: `{meta['command']}`",
             f"- date: {meta['date']}; kernel {meta['kernel']}; {meta['cpus']} CPUs ({meta['machine']})",
             f"- nlbpf: {meta['commit']} (`python -m nlbpf.cli` from {meta['tree']})",
             f"- repetitions: {args.reps}, configurations interleaved in a shuffled order per repetition; "
             f"workloads and tracers at nice {args.nice}",
             f"- quiet gate: waited {meta['gate_waited_s']}s in total for other tracers/CPU load to go; "
             f"{meta['noisy_runs']} runs overlapped someone else's load (left out of the medians "
             f"where at least {QUIET_MIN} quiet runs remained)",
             "", text, "", "### Targets", ""]
    for name, ok, why in verdicts:
        lines.append(f"- {'**met**' if ok else '**missed**' if ok is not None else 'for reference'}: "
                     f"{name} — {why}")
    lines.append("")
    interp = BENCH / "interpretation.md"
    if interp.exists():
        lines += ["### Interpretation", "", interp.read_text().strip(), ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
