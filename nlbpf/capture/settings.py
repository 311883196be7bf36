"""How a capture loads: built once by the CLI from its options, passed to every
Capture a command makes (and into trace --spool's child, which forks)."""
from dataclasses import dataclass

# bytes of each message kept (--snaplen): the most is what the probes' per-CPU event
# buffer holds; the default keeps whole the messages people read most (a link
# message with its stats is ~1.1-1.5 KB)
MIN_SNAPLEN, MAX_SNAPLEN, DEFAULT_SNAPLEN = 16, 4096, 1024


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
