"""The floor under any syscall-tracepoint tool: empty BPF programs on the hooks nlbpf uses.

    sudo .venv/bin/python bench/floor.py          # attach, print the Tracing line, wait for Ctrl-C
    sudo .venv/bin/python bench/floor.py --raw    # the raw_syscalls alternative instead
    sudo .venv/bin/python bench/floor.py --sock   # the sock tracepoints instead

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", action="store_true", help="raw_syscalls sys_enter/sys_exit instead")
    ap.add_argument("--sock", action="store_true",
                    help="the socket layer's hooks (BTF tracepoints) instead")
    args = ap.parse_args()
    from nlbpf.capture import environment
    environment.kernel_headers()        # BCC_KERNEL_SOURCE, as nlbpf sets it
    from bcc import BPF
    if args.raw:
        src = raw_source()
    elif args.sock:
        src = sock_source()
    else:
        src = "".join(f"TRACEPOINT_PROBE(syscalls, sys_{d}_{c}) {{ return 0; }}\n"
                      for c in CALLS for d in ("enter", "exit"))
    bpf = BPF(text=src)
    progs = attach_sock(bpf) if args.sock else None
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: stop.append(1))
    print(TRACING_LINE, file=sys.stderr, flush=True)
    while not stop:
        time.sleep(0.1)
    if progs is not None:
        progs.close()
    bpf.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
