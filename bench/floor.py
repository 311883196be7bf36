"""The floor under any syscall-tracepoint tool: empty BPF programs on the hooks nlbpf uses.

    sudo .venv/bin/python bench/floor.py          # attach, print the Tracing line, wait for Ctrl-C
    sudo .venv/bin/python bench/floor.py --raw    # the raw_syscalls alternative instead
    sudo .venv/bin/python bench/floor.py --sock   # the sock tracepoints instead
    sudo .venv/bin/python bench/floor.py --sock-copy   # ... copying every message out

Attaches a program that returns at once to each of the twelve tracepoints
nlbpf's syscall layer uses (sys_enter_/sys_exit_ of sendmsg, sendto, sendmmsg,
recvmsg, recvfrom, recvmmsg). Whatever a workload loses under this is the
price of the hook itself (syscall tracepoints put every syscall of every task
on the traced path), before nlbpf does any work. bench/run.py runs it as the
`floor` configuration.

--raw attaches instead one program to each of raw_syscalls' sys_enter and
sys_exit that picks out the six syscalls by number, the way a single
dispatcher would (`floor-raw`): it runs for every syscall of every task, but
skips building the per-syscall tracepoint's record. Comparing the two says
what moving the probes there could save.

--sock attaches what the socket layer (--hooks sock) hooks, as it loads it: a
BTF tracepoint program that returns at once on sock:sk_data_ready (errors, top)
and one on sock:sock_send_length (slow) (`floor-sock`). No syscall takes the
traced path for them, so other processes pay only when they queue to or send on
a socket; they fire once per buffer queued and once per send.

--sock-copy loads bench/sock_copy.bpf.c on the same two hooks: each hands every
netlink message to user space as a trace would (who, when, up to 1,024 bytes),
through a 16 MB ring buffer that this script drains and throws away
(`floor-sock-copy`). It is the least a socket-layer `trace` would cost the
traced process: no filter, no pairing, no dump walk, no decoding.
"""
import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CALLS = ("sendmsg", "sendto", "sendmmsg", "recvmsg", "recvfrom", "recvmmsg")
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."
# x86-64 numbers of the six calls (the --raw dispatcher compares against them)
X86_64_NR = {"sendto": 44, "recvfrom": 45, "sendmsg": 46, "recvmsg": 47, "recvmmsg": 299,
             "sendmmsg": 307}
PT_REGS_ORIG_AX = 120       # offsetof(struct pt_regs, orig_ax) on x86-64: the syscall number


def raw_source():
    match = " || ".join(f"id == {nr}" for nr in sorted(X86_64_NR.values()))
    return (f"RAW_TRACEPOINT_PROBE(sys_enter) {{ long id = (long)ctx->args[1];"
            f" return ({match}) ? 1 : 0; }}\n"
            f"RAW_TRACEPOINT_PROBE(sys_exit) {{ long id = 0;"
            f" bpf_probe_read_kernel(&id, sizeof(id), (void *)(ctx->args[0] + {PT_REGS_ORIG_AX}));"
            f" return ({match}) ? 1 : 0; }}\n")


SOCK_HOOKS = ("sk_data_ready", "sock_send_length")


def sock_source():
    """an empty program per socket-layer hook, loaded as the layer loads them (tp_btf)"""
    return "".join(f"int empty_{tp}(u64 *ctx) {{ return 0; }}\n" for tp in SOCK_HOOKS)


def attach_sock(bpf):
    """Load and attach sock_source()'s programs as BTF tracepoints (bcc cannot)."""
    from nlbpf.capture import btfprog
    from nlbpf.capture.btf import BTF
    ids = BTF.load().attach_ids
    progs = btfprog.Programs()
    for tp in SOCK_HOOKS:
        fd = progs.keep(btfprog.load(bpf.dump_func(f"empty_{tp}"), f"empty_{tp}",
                                     btfprog.BPF_TRACE_RAW_TP, ids[f"btf_trace_{tp}"]))
        progs.keep(btfprog.attach_tracepoint(fd))
    return progs


COPY_SOURCE = Path(__file__).resolve().parent / "sock_copy.bpf.c"


def load_sock_copy(ring_pages=4096, defines=()):
    """sock_copy.bpf.c compiled with the running kernel's offsets (and -D defines: its
    COPY_* knobs) and attached as BTF tracepoints; (bpf, programs, ring reader)."""
    from bcc import BPF
    from nlbpf.capture import btfprog, ringbuf
    from nlbpf.capture.btf import BTF, SOCK_OFFSETS, probe_offsets
    btf = BTF.load()
    offsets = {**probe_offsets(btf), **probe_offsets(btf, SOCK_OFFSETS)}
    cflags = [f"-D{k}={v}" for k, v in offsets.items()] + [f"-DRING_PAGES={ring_pages}"] + [
        f"-D{d}" for d in defines]
    bpf = BPF(src_file=str(COPY_SOURCE), cflags=cflags)
    progs = btfprog.Programs()
    for tp in SOCK_HOOKS:
        fd = progs.keep(btfprog.load(bpf.dump_func(f"copy_{tp}"), f"copy_{tp}",
                                     btfprog.BPF_TRACE_RAW_TP, btf.attach_ids[f"btf_trace_{tp}"]))
        progs.keep(btfprog.attach_tracepoint(fd))
    table = bpf["copies"]
    ring = ringbuf.RingReader.from_map(table.map_fd, table.max_entries)
    return bpf, progs, ring


def lost(bpf):
    """Records the copy program's ring had no room for (a floor that drops measures less)."""
    return sum(sum(per_cpu) for per_cpu in bpf["copy_lost"].values())


def drain(ring, stop):
    """Read the ring as a trace's capture would, and drop what it holds; records read."""
    from nlbpf.capture.ringbuf import ring_records
    records = 0
    while True:
        last = bool(stop)           # one more pass after the signal: what came before it
        while ring.fill():
            for span in ring.take():
                records += sum(1 for _ in ring_records(span))
        if last:
            return records
        ring.wait(100)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", action="store_true", help="raw_syscalls sys_enter/sys_exit instead")
    ap.add_argument("--sock", action="store_true",
                    help="the socket layer's hooks (BTF tracepoints) instead")
    ap.add_argument("--sock-copy", action="store_true",
                    help="the socket layer's hooks, copying every message to a ring buffer")
    ap.add_argument("--ring-pages", type=int, default=4096,
                    help="--sock-copy's ring buffer in pages (a power of 2; 4096 = nlbpf's 16 MB)")
    args = ap.parse_args()
    from nlbpf.capture import environment
    environment.kernel_headers()        # BCC_KERNEL_SOURCE, as nlbpf sets it
    from bcc import BPF
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: stop.append(1))
    if args.sock_copy:
        bpf, progs, ring = load_sock_copy(args.ring_pages)
        print(TRACING_LINE, file=sys.stderr, flush=True)
        records = drain(ring, stop)
        print(f"floor: {records} records read, {lost(bpf)} lost", file=sys.stderr)
        ring.close()
        progs.close()
        bpf.cleanup()
        return 0
    if args.raw:
        src = raw_source()
    elif args.sock:
        src = sock_source()
    else:
        src = "".join(f"TRACEPOINT_PROBE(syscalls, sys_{d}_{c}) {{ return 0; }}\n"
                      for c in CALLS for d in ("enter", "exit"))
    bpf = BPF(text=src)
    progs = attach_sock(bpf) if args.sock else None
    print(TRACING_LINE, file=sys.stderr, flush=True)
    while not stop:
        time.sleep(0.1)
    if progs is not None:
        progs.close()
    bpf.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
