#!/usr/bin/env python3
"""What each part of a syscall-layer entry probe costs, in ns per call.

    sudo .venv/bin/python bench/probe_costs.py [--calls 30000]

Loads one small program at a time on syscalls:sys_enter_recvfrom, each doing a
part of what nlbpf's entry probe does, drives RTM_GETLINK round trips
(bench/nlload.py) in a throwaway netns, and reads the program's run time from
the kernel (kernel.bpf_stats_enabled=1, `bpftool prog show`):

    empty       nothing: the cost of running a program at all
    chain       fd -> file -> socket -> sock -> proto, netns (BTF offsets, 12 reads)
    fill        bpf_ktime_get_ns + comm + cgroup id + pid
    clock       bpf_ktime_get_ns alone
    hash        fill + a hash-map update, lookup and delete keyed by tid (the old per-call state)
    task        fill + two task-storage lookups and a copy (the per-call state now)

The numbers include bpf_stats' own two clock reads per run; compare them with
each other, not with the tables in bench/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

SOURCE = r"""
struct call { u64 ts, sk, cgroup, a, b, c; u32 netns, pid; u8 x[4]; char comm[16];
              u64 l[4]; u32 h[2]; char hc[32]; };
BPF_HASH(calls, u32, struct call, 10240);
#ifdef TASK
BPF_TASK_STORAGE(tcalls, struct call);
#endif
static __always_inline u64 rd(u64 addr) { u64 v = 0; bpf_probe_read_kernel(&v, 8, (void *)addr); return v; }
static __always_inline u64 chain(int fd)
{
    u64 fdt = rd(rd((u64)bpf_get_current_task() + OFF_TASK_FILES) + OFF_FILES_FDT);
    u32 max_fds = 0;
    bpf_probe_read_kernel(&max_fds, 4, (void *)(fdt + OFF_FDT_MAX_FDS));
    if ((u32)fd >= max_fds)
        return 0;
    u64 file = rd(rd(fdt + OFF_FDT_FD) + (u64)fd * 8);
    u16 mode = 0, family = 0, protocol = 0;
    bpf_probe_read_kernel(&mode, 2, (void *)(rd(file + OFF_FILE_INODE) + OFF_INODE_MODE));
    u64 sk = rd(rd(file + OFF_FILE_PRIVATE) + OFF_SOCKET_SK);
    bpf_probe_read_kernel(&family, 2, (void *)(sk + OFF_SOCK_FAMILY));
    if (family != 16)
        return 0;
    bpf_probe_read_kernel(&protocol, 2, (void *)(sk + OFF_SOCK_PROTOCOL));
    u32 netns = 0;
    bpf_probe_read_kernel(&netns, 4, (void *)(rd(sk + OFF_SOCK_NET) + OFF_NET_INUM));
    return sk + protocol + netns;
}
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom)
{
    struct call c = {};
#ifdef CHAIN
    if (!chain(args->fd))
        return 0;
#endif
#ifdef CLOCK
    c.ts = bpf_ktime_get_ns();
#endif
#ifdef FILL
    c.ts = bpf_ktime_get_ns();
    bpf_get_current_comm(&c.comm, 16);
    c.cgroup = bpf_get_current_cgroup_id();
    c.pid = bpf_get_current_pid_tgid() >> 32;
#endif
#ifdef HASH
    u32 tid = bpf_get_current_pid_tgid();
    calls.update(&tid, &c);
    struct call *p = calls.lookup(&tid);
    if (p)
        c.a = p->a;
    calls.delete(&tid);
#endif
#ifdef TASK
    struct call *p = tcalls.task_storage_get(bpf_get_current_task_btf(), 0,
                                             BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (p)
        __builtin_memcpy(p, &c, sizeof(c));
    struct call *q = tcalls.task_storage_get(bpf_get_current_task_btf(), 0, 0);
    if (q)
        q->ts = 0;
#endif
    return 0;
}
"""
VARIANTS = {"empty": [], "chain": ["CHAIN"], "fill": ["FILL"], "clock": ["CLOCK"],
            "hash": ["FILL", "HASH"], "task": ["FILL", "TASK"]}


def run_ns(prog_name):
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                      text=True, check=True).stdout)
    return {p["id"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in progs
            if prog_name in p.get("name", "")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=30000, help="RTM_GETLINK round trips per variant")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/probe_costs.py needs root (it loads probes and makes a netns)")
    from nlbpf.capture import environment
    from nlbpf.capture.btf import probe_offsets
    bcc = environment.import_bcc()
    environment.kernel_headers()            # BCC_KERNEL_SOURCE when only generic headers exist
    offsets = probe_offsets()
    ns = f"nlpc-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    stats = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
        print("| part | ns per call |\n|---|---|")
        for name, defines in VARIANTS.items():
            flags = [f"-D{k}={v}" for k, v in offsets.items()] + [f"-D{d}" for d in defines]
            others = set(run_ns("sys_enter_recvfrom"))      # someone else's (nlbpf running)
            b = bcc.BPF(text=SOURCE, cflags=flags)
            try:
                ours = set(run_ns("sys_enter_recvfrom")) - others
                before = run_ns("sys_enter_recvfrom")
                subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(BENCH / "nlload.py"),
                                "getlink", str(a.calls)], check=True, capture_output=True)
                after = run_ns("sys_enter_recvfrom")
            finally:
                b.cleanup()
            t = sum(after[k][0] - before[k][0] for k in ours)
            n = sum(after[k][1] - before[k][1] for k in ours)
            print(f"| {name} | {t / max(1, n):.0f} |")
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text(stats)
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
