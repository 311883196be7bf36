#!/usr/bin/env python3
"""What nlbpf's probes cost a netlink workload, from the kernel's own counters.

    sudo .venv/bin/python bench/probe_share.py
    sudo .venv/bin/python bench/probe_share.py --commands errors --workloads getlink --runs 5

bench/run.py times whole workloads bare and traced; on a shared VM one run of
the same workload varies 7-15% from the next, which hides a 2% cost however
many repetitions there are. This measures the cost's two parts instead:

  probe time  with kernel.bpf_stats_enabled the kernel sums each program's run
              time and runs (run_time_ns, run_cnt in the fdinfo of the process
              holding it): nlbpf's programs during the workload, per netlink
              message and as a share of the workload's own CPU time. Counting
              adds about two clock reads to each run; that is measured on empty
              programs and taken off.
  dispatch    what calling a program from a tracepoint costs before it runs:
              empty programs on the socket layer's hooks (as bench/floor.py
              --sock loads them) attached and detached in this process around
              --dispatch-runs alternating runs of one-byte socketpair pings
              (each fires both hooks once, in ~2 us: the dispatch is a large
              share, so the paired CPU-time ratios resolve it), per firing.

The sum is what a command costs the workload in the kernel. Its userspace
(decoding, printing) runs in nlbpf's process, on another CPU if there is one.
Prints a markdown table; --out writes it to a file, --json-out the numbers.
"""
import argparse
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."
STATS = "/proc/sys/kernel/bpf_stats_enabled"
ITERATORS = ("slow_poll", "drops_poll")
COMMANDS = {"errors": ["errors"], "top": ["top", "-i", "1"],
            "slow": ["slow", "--threshold", "500ms"]}


def load_run():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prog_stats(pid):
    """{prog id: (run_cnt, run_time_ns)} of the BPF programs process pid holds."""
    out = {}
    for f in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = f.read_text()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s*(\d+)", text, re.M)
        cnt = re.search(r"^run_cnt:\s*(\d+)", text, re.M)
        ns = re.search(r"^run_time_ns:\s*(\d+)", text, re.M)
        if m and cnt and ns:        # a program's fd (a link's names its program, no counts)
            out[int(m.group(1))] = (int(cnt.group(1)), int(ns.group(1)))
    return out


def prog_names(ids):
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    names = {p["id"]: p.get("name", "?") for p in json.loads(out.stdout or "[]")}
    return {i: names.get(i, "?") for i in ids}


class Stats:
    """kernel.bpf_stats_enabled on while held, as it was after."""

    def __enter__(self):
        self.was = Path(STATS).read_text().strip()
        Path(STATS).write_text("1")
        return self

    def __exit__(self, *exc):
        Path(STATS).write_text(self.was)


def workload(run, env, name, args):
    argv = run.workload_argv(env, name, args.getlink_count, dump_count=args.dump_count)
    pid, rc, wall, info, err, _ = run.run_workload(argv)
    if (name == "batch" and rc not in (0, 1)) or (name != "batch" and rc != 0):
        raise RuntimeError(f"{' '.join(argv)} failed ({rc}): {err[:300]}")
    cpu = info.get("cpu_seconds", info.get("process_cpu_seconds"))
    return cpu, run.expected(env, name, info)["messages"]


def probe_time(run, env, command, name, args):
    """Per program of `nlbpf command` over the workload: runs and ns, and the workload's
    CPU seconds and messages (medians of --runs)."""
    proc = subprocess.Popen([sys.executable, "-m", "nlbpf.cli", *COMMANDS[command], "--json"],
                            cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    err = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            err.append(line)
            if TRACING_LINE in line or time.monotonic() > deadline:
                break
        if TRACING_LINE not in "".join(err):
            raise RuntimeError("nlbpf did not start:\n" + "".join(err))
        layer = next((ln.split()[1] for ln in err if ln.startswith("Hooks:")), "?")
        time.sleep(0.3)
        per_run = []
        with Stats():
            for _ in range(args.runs):
                before = prog_stats(proc.pid)
                cpu, msgs = workload(run, env, name, args)
                after = prog_stats(proc.pid)
                progs = {i: (after[i][0] - before.get(i, (0, 0))[0],
                             after[i][1] - before.get(i, (0, 0))[1]) for i in after}
                per_run.append((cpu, msgs, progs))
        names = prog_names(per_run[0][2])
        return layer, names, per_run
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def empty_programs():
    """The floor's empty programs on the socket layer's hooks, loaded, not attached."""
    from bcc import BPF
    from nlbpf.capture import btfprog, environment
    from nlbpf.capture.btf import BTF
    floor = importlib.util.spec_from_file_location("floor", BENCH / "floor.py")
    mod = importlib.util.module_from_spec(floor)
    floor.loader.exec_module(mod)
    environment.kernel_headers()
    bpf = BPF(text=mod.sock_source())
    ids = BTF.load().attach_ids
    progs = btfprog.Programs()
    fds = [progs.keep(btfprog.load(bpf.dump_func(f"empty_{tp}"), f"empty_{tp}",
                                   btfprog.BPF_TRACE_RAW_TP, ids[f"btf_trace_{tp}"]))
           for tp in mod.SOCK_HOOKS]
    return bpf, progs, fds


def stats_overhead(run, env, fds, args):
    """ns bpf_stats adds to each run of a program: what an empty program's runs sum to."""
    from nlbpf.capture import btfprog
    links = [btfprog.attach_tracepoint(fd) for fd in fds]
    try:
        with Stats():
            before = prog_stats(os.getpid())
            workload(run, env, "getlink", args)
            after = prog_stats(os.getpid())
    finally:
        for fd in links:
            os.close(fd)
    runs = sum(after[i][0] - before.get(i, (0, 0))[0] for i in after)
    ns = sum(after[i][1] - before.get(i, (0, 0))[1] for i in after)
    return ns / runs if runs else 0.0


def socket_pings(n):
    """CPU seconds of n one-byte sends over a socketpair, each read back: every one
    fires each socket-layer hook once (the send's end, the buffer queued to the peer)."""
    import socket
    a, b = socket.socketpair()
    t0 = time.thread_time()
    for _ in range(n):
        a.send(b"x")
        b.recv(1)
    t = time.thread_time() - t0
    a.close()
    b.close()
    return t


def dispatch(fds, args):
    """What a tracepoint costs to call a program that does nothing, per firing: socket
    pings with the empty programs attached against without, alternating, the median of
    the paired ratios; firings counted by bpf_stats in one more run."""
    from nlbpf.capture import btfprog
    n = args.pings
    ratios = []
    bare = socket_pings(n)
    for _ in range(args.dispatch_runs):
        links = [btfprog.attach_tracepoint(fd) for fd in fds]
        try:
            on = socket_pings(n)
        finally:
            for fd in links:
                os.close(fd)
        after = socket_pings(n)
        ratios.append((on, (bare + after) / 2))
        bare = after
    links = [btfprog.attach_tracepoint(fd) for fd in fds]
    try:
        with Stats():
            before = prog_stats(os.getpid())
            socket_pings(n)
            counted = prog_stats(os.getpid())
    finally:
        for fd in links:
            os.close(fd)
    fired = sum(counted[i][0] - before.get(i, (0, 0))[0] for i in counted)
    ratio = statistics.median(on / off for on, off in ratios)
    per_ns = statistics.median((on - off) for on, off in ratios) * 1e9 / fired if fired else 0.0
    return ratio, fired / n, per_ns


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", default="errors,top,slow")
    ap.add_argument("--workloads", default="batch,getlink,dump")
    ap.add_argument("--runs", type=int, default=3, help="workload runs per command (medians)")
    ap.add_argument("--dispatch-runs", type=int, default=21)
    ap.add_argument("--pings", type=int, default=200000, help="socket pings per dispatch run")
    ap.add_argument("--getlink-count", type=int, default=30000)
    ap.add_argument("--batch-routes", type=int, default=10000)
    ap.add_argument("--dump-routes", type=int, default=50000)
    ap.add_argument("--dump-count", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("probe_share.py: run as root (it loads BPF programs)", file=sys.stderr)
        return 1
    run = load_run()
    workloads = args.workloads.split(",")
    commands = args.commands.split(",")
    result = {"workloads": {}, "stats_ns_per_run": None}
    with run.Env(args.batch_routes, 0, args.dump_routes, sys.executable) as env:
        bpf, progs, fds = empty_programs()
        try:
            overhead = stats_overhead(run, env, fds, args)
            result["stats_ns_per_run"] = round(overhead, 1)
            print(f"bpf_stats' own cost: {overhead:.0f} ns per run (taken off below)",
                  file=sys.stderr)
            ratio, per_ping, per_firing = dispatch(fds, args)
            result["dispatch"] = {"pings": args.pings, "runs": args.dispatch_runs,
                                  "empty_hooks_ratio": round(ratio, 4),
                                  "firings_per_ping": round(per_ping, 3),
                                  "ns_per_firing": round(per_firing, 1)}
            print(f"dispatch: socket pings {ratio:.3f}x with empty programs, {per_ping:.2f} "
                  f"firings each, {per_firing:.0f} ns per firing", file=sys.stderr)
            for name in workloads:
                w = result["workloads"][name] = {"commands": {}}
                for command in commands:
                    layer, names, per_run = probe_time(run, env, command, name, args)
                    cpu = statistics.median(r[0] for r in per_run)
                    msgs = statistics.median(r[1] for r in per_run)
                    rows = {}
                    for pid_prog in names:
                        cnt = statistics.median(r[2].get(pid_prog, (0, 0))[0] for r in per_run)
                        ns = statistics.median(r[2].get(pid_prog, (0, 0))[1] for r in per_run)
                        if cnt:
                            rows[names[pid_prog]] = {"runs_per_msg": round(cnt / msgs, 3),
                                                     "ns_per_run": round(ns / cnt - overhead, 1)}
                    # the iterators run in nlbpf's own process (reading them), not the workload's
                    probe_ns = sum(r["runs_per_msg"] * msgs * r["ns_per_run"]
                                   for n, r in rows.items() if n not in ITERATORS)
                    hook_firings = sum(r["runs_per_msg"] for n, r in rows.items()
                                       if n.startswith(("sock_ready", "sock_sent"))) * msgs
                    dispatch_ns = hook_firings * per_firing
                    w.update(messages=msgs, cpu_s=round(cpu, 4))
                    w["commands"][command] = {
                        "layer": layer, "programs": rows,
                        "probe_share": round(probe_ns / (cpu * 1e9), 4),
                        "dispatch_share": round(dispatch_ns / (cpu * 1e9), 4),
                        "total_share": round((probe_ns + dispatch_ns) / (cpu * 1e9), 4)}
                    print(f"  {command} ({layer}): probes {probe_ns / (cpu * 1e9):.2%}, dispatch "
                          f"{dispatch_ns / (cpu * 1e9):.2%} of the workload's CPU", file=sys.stderr)
        finally:
            progs.close()
            bpf.cleanup()
    publish(render(result, args), result, args)
    return 0


def publish(table, result, args):
    """Print the table; write it to --out, and the numbers to --json-out."""
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")


def render(result, args):
    lines = ["# What the probes cost, from the kernel's counters", "",
             f"- command: `sudo .venv/bin/python bench/probe_share.py {' '.join(sys.argv[1:])}`",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; kernel "
             f"{os.uname().release}; {os.cpu_count()} CPUs",
             f"- bpf_stats' own cost, taken off: {result['stats_ns_per_run']} ns per program run",
             "", "| workload | command (layer) | hook runs per message | ns per run | probes, share "
             "of the workload's CPU | + dispatch | = in the kernel |", "|---|---|---|---|---|---|---|"]
    for name, w in result["workloads"].items():
        for command, c in w["commands"].items():
            progs = c["programs"]
            main = {n: r for n, r in progs.items() if n.startswith(("sock_", "slow_", "drops_"))} \
                or progs
            runs = ", ".join(f"{n} {r['runs_per_msg']}" for n, r in main.items())
            ns = ", ".join(f"{r['ns_per_run']:.0f}" for r in main.values())
            lines.append(f"| {name} | {command} ({c['layer']}) | {runs} | {ns} | "
                         f"{c['probe_share']:.2%} | {c['dispatch_share']:.2%} | "
                         f"**{c['total_share']:.2%}** |")
    d = result["dispatch"]
    lines += ["", f"Dispatch: {d['runs']} runs of {d['pings']:,} one-byte socketpair pings with "
              f"empty programs on the hooks, each against the bare runs on both sides: "
              f"{d['empty_hooks_ratio']:.3f}× the CPU time (median), {d['firings_per_ping']} "
              f"firings per ping, **{d['ns_per_firing']:.0f} ns per firing**. It is what any "
              f"process pays per socket send and per buffer queued to one of its sockets "
              f"while errors, top or slow runs on this layer (the program returns at the "
              f"family check); file and other I/O pays nothing."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
