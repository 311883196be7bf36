"""The floor under any syscall-tracepoint tool: empty BPF programs on the hooks nlbpf uses.

    sudo .venv/bin/python bench/floor.py          # attach, print the Tracing line, wait for Ctrl-C

Attaches a program that returns at once to each of the twelve tracepoints
nlbpf's syscall layer uses (sys_enter_/sys_exit_ of sendmsg, sendto, sendmmsg,
recvmsg, recvfrom, recvmmsg). Whatever a workload loses under this is the
price of the hook itself (syscall tracepoints put every syscall of every task
on the traced path), before nlbpf does any work. bench/run.py runs it as the
`floor` configuration.
"""
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CALLS = ("sendmsg", "sendto", "sendmmsg", "recvmsg", "recvfrom", "recvmmsg")
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."


def main():
    from nlbpf.capture import environment
    environment.kernel_headers()        # BCC_KERNEL_SOURCE, as nlbpf sets it
    from bcc import BPF
    src = "".join(f"TRACEPOINT_PROBE(syscalls, sys_{d}_{c}) {{ return 0; }}\n"
                  for c in CALLS for d in ("enter", "exit"))
    bpf = BPF(text=src)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: stop.append(1))
    print(TRACING_LINE, file=sys.stderr, flush=True)
    while not stop:
        time.sleep(0.1)
    bpf.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
