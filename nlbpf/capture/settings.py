"""How a capture loads: built once by the CLI from its options, passed to every
Capture a command makes (and into trace --spool's child, which forks)."""
from dataclasses import dataclass

# bytes of each message kept (--snaplen): the most is what the probes' per-CPU event
# buffer holds.
MIN_SNAPLEN, MAX_SNAPLEN = 16, 4096
# trace and record keep each message whole up to that most: a link message with its
# stats is ~1.1-1.5 KB, an nftables rule dump part more, and a message costs what it
# holds, not the snap length (bench/RESULTS.md: 4096 costs what 1024 did, within the
# runs' spread). errors and slow hold each request in the kernel until its reply, in
# slots of the snap length (16,384 of them, PENDING_MAX): requests are small, 1 KB.
TRACE_SNAPLEN, HELD_SNAPLEN = MAX_SNAPLEN, 1024
SNAPLEN_HELP = f"{TRACE_SNAPLEN} for trace and record, {HELD_SNAPLEN} for the others"


def default_snaplen(mode):
    """--snaplen when not given: the capture mode's (record captures as trace does)."""
    return TRACE_SNAPLEN if mode == "trace" else HELD_SNAPLEN


@dataclass(frozen=True)
class CaptureSettings:
    hooks: str = "auto"           # auto | kernel | sock | syscall (--hooks, NLBPF_HOOKS)
    kernel_probe: str = "auto"    # auto | fentry | kprobe (--kernel-probe, NLBPF_KERNEL_PROBE)
    buffer: str = "auto"          # auto | ring | perf (--buffer)
    # the switches below are hidden options, for tests and benchmarks
    buffer_pages: int = None      # ring buffer pages in all, or perf buffer pages per CPU
                                  # (None: the loader's default; --buffer-pages)
    call_state: str = "auto"      # auto | hash: where a thread's call in flight is kept
                                  # (hash: the path of kernels without task storage)
    fd_walk: str = "auto"         # auto | helpers: the syscall layer's fd -> socket walk
                                  # through BTF loads where it can, or helper reads
    ring_reader: str = "auto"     # auto | bcc: read the ring buffer's pages, or bcc's callback
    rw: str = "auto"              # auto | on | off: the syscall layer also hooks read(),
                                  # write() and their vector forms (--rw, NLBPF_RW)
    ask_again: bool = False       # doctor: ask the kernel again what it refused, not the
                                  # refusals kept for the boot (bootcache.py)
