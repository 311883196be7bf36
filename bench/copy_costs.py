#!/usr/bin/env python3
"""What handing one netlink message to user space costs, step by step.

    sudo .venv/bin/python bench/copy_costs.py
    sudo .venv/bin/python bench/copy_costs.py --workloads getlink --reps 9

`trace` must hand every message over: who sent it, when, and its bytes. This
loads bench/sock_copy.bpf.c (bench/floor.py --sock-copy: the socket layer's
two hooks, the cheapest there are, with no filter, pairing or dump walk) in
variants that each leave out one more step, and runs the workloads under each,
interleaved in a shuffled order per repetition with bare runs:

  copy           every step: the copy floor (a 16 MB ring, as nlbpf's)
  copy, 256 KB   every step, through a ring small enough to stay in cache
  no output      all but the ring buffer's write
  no data        ... and the message's bytes not read
  no cgroup      ... and no bpf_get_current_cgroup_id
  no comm        ... and no bpf_get_current_comm (left: clock, pid, the send's
                 registers and msghdr)
  dispatch       return after the family check

Two measures per variant: the programs' own time per hook run from the
kernel's bpf_stats counters (their ~50 ns per run of counting, measured on the
dispatch variant's empty work, is not taken off: compare rows), and the
workload's CPU time against the bare run of the same repetition. The ring is
drained while the workload runs, as floor.py does; what it had no room for
is counted and shown (a write that fails on a full ring is cheap, so a
variant that lost records looks cheaper than it is). Prints a
markdown table; --out writes it to a file, --json-out the numbers.
"""
import argparse
import importlib.util
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

# (name, what it leaves out, -D knobs of sock_copy.bpf.c, ring buffer pages)
VARIANTS = [
    ("copy", "nothing: every step", (), 4096),
    ("copy, 256 KB ring", "nothing, through a 256 KB ring", (), 64),
    ("no output", "the ring buffer's write", ("COPY_NO_OUTPUT",), 4096),
    ("no data", "... and reading the message's bytes", ("COPY_NO_DATA",), 4096),
    ("no cgroup", "... and bpf_get_current_cgroup_id", ("COPY_NO_CGROUP",), 4096),
    ("no comm", "... and bpf_get_current_comm", ("COPY_NO_COMM",), 4096),
    ("dispatch", "everything after the family check", ("COPY_NOTHING",), 4096),
]


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def one_run(mods, env, workload, args, variant):
    """The workload once, with sock_copy's variant (knobs, ring pages) attached (None:
    bare) and its ring drained meanwhile, as floor.py does (a full ring would fail its
    writes early and make them look cheap); (its CPU seconds, messages, hook runs, ns
    in the programs, records lost)."""
    run, floor, probe_share = mods["run"], mods["floor"], mods["probe_share"]
    loaded = drainer = None
    stop = []
    if variant is not None:
        defines, pages = variant
        loaded = floor.load_sock_copy(ring_pages=pages, defines=defines)
        drainer = threading.Thread(target=floor.drain, args=(loaded[2], stop))
        drainer.start()
    try:
        before = probe_share.prog_stats(os.getpid())
        argv = run.workload_argv(env, workload, args.getlink_count, dump_count=args.dump_count)
        _, rc, _, info, err, _ = run.run_workload(argv)
        after = probe_share.prog_stats(os.getpid())
        if rc not in (0, 1):
            raise RuntimeError(f"{' '.join(argv)} failed ({rc}): {err[:300]}")
    finally:
        lost = 0
        if loaded:
            stop.append(1)
            drainer.join()
            bpf, progs, ring = loaded
            lost = floor.lost(bpf)
            ring.close()
            progs.close()
            bpf.cleanup()
    runs = sum(after[i][0] - before.get(i, (0, 0))[0] for i in after)
    ns = sum(after[i][1] - before.get(i, (0, 0))[1] for i in after)
    cpu = info.get("cpu_seconds", info.get("process_cpu_seconds"))
    return cpu, run.expected(env, workload, info)["messages"], runs, ns, lost


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="getlink,batch")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--getlink-count", type=int, default=60000)
    ap.add_argument("--batch-routes", type=int, default=20000)
    ap.add_argument("--dump-count", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("copy_costs.py: run as root (it loads BPF programs)", file=sys.stderr)
        return 1
    from nlbpf.capture import environment
    environment.kernel_headers()
    mods = {name: load(name) for name in ("run", "floor", "probe_share")}
    run, probe_share = mods["run"], mods["probe_share"]
    rnd = random.Random(args.seed)
    workloads = args.workloads.split(",")
    configs = [("bare", None)] + [(name, (knobs, pages)) for name, _, knobs, pages in VARIANTS]
    runs = {}
    with run.Env(args.batch_routes, 0, 50000 if "dump" in workloads else 0,
                 sys.executable) as env, probe_share.Stats():
        for rep in range(args.reps):
            order = [(w, c) for w in workloads for c in configs]
            rnd.shuffle(order)
            for w, (name, variant) in order:
                r = one_run(mods, env, w, args, variant)
                runs.setdefault((w, name), []).append(r)
                print(f"rep {rep + 1}/{args.reps} {w} / {name}: cpu {r[0]:.3f}s, lost {r[4]}",
                      file=sys.stderr)
    result = summarize(runs, workloads)
    probe_share.publish(render(result, args), result, args)
    return 0


def summarize(runs, workloads):
    out = {}
    for w in workloads:
        bare = [r[0] for r in runs[(w, "bare")]]
        rows = {}
        for name, *_ in VARIANTS:
            rs = runs[(w, name)]
            rows[name] = {
                "cpu_ratio": statistics.median(r[0] / b for r, b in zip(rs, bare)),
                "cpu_ratio_min": min(r[0] / b for r, b in zip(rs, bare)),
                "cpu_ratio_max": max(r[0] / b for r, b in zip(rs, bare)),
                "ns_per_run": statistics.median(r[3] / r[2] for r in rs if r[2]),
                "runs_per_msg": statistics.median(r[2] / r[1] for r in rs if r[1]),
                "cpu_ns_per_msg": statistics.median((r[0] - b) * 1e9 / r[1]
                                                    for r, b in zip(rs, bare) if r[1]),
                "lost": sum(r[4] for r in rs),
            }
        out[w] = {"bare_cpu_s": statistics.median(bare),
                  "messages": statistics.median(r[1] for r in runs[(w, "bare")]),
                  "variants": rows}
    return out


def render(result, args):
    lines = ["# What handing a message to user space costs, step by step", "",
             f"- command: `sudo .venv/bin/python bench/copy_costs.py {' '.join(sys.argv[1:])}`",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; kernel "
             f"{os.uname().release}; {os.cpu_count()} CPUs; {args.reps} repetitions, "
             "variants and bare runs interleaved in a shuffled order per repetition",
             "- programs: bench/sock_copy.bpf.c on sock:sk_data_ready and sock:sock_send_length; "
             "ns per hook run from bpf_stats (its own ~50 ns per run included in every row)", ""]
    for w, r in result.items():
        lines += [f"### {w}: {r['messages']:,} messages, bare {r['bare_cpu_s']:.3f} s of CPU "
                  f"({r['bare_cpu_s'] * 1e9 / r['messages']:.0f} ns per message)", "",
                  "| variant | leaves out | ns per hook run | workload CPU vs bare (min–max) "
                  "| workload CPU added per message | lost (all runs) |", "|---|---|---|---|---|---|"]
        for name, what, *_ in VARIANTS:
            v = r["variants"][name]
            lines.append(f"| {name} | {what} | {v['ns_per_run']:.0f} | {v['cpu_ratio']:.3f}× "
                         f"({v['cpu_ratio_min']:.2f}–{v['cpu_ratio_max']:.2f}) | "
                         f"{v['cpu_ns_per_msg']:.0f} ns | {v['lost']:,} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
