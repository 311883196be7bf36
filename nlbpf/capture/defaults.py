"""How captures load when the caller does not say: set once by the CLI (--hooks,
--kernel-probe, or NLBPF_HOOKS / NLBPF_KERNEL_PROBE), read by every Capture."""

CAPTURE_DEFAULTS = {
    "hooks": "auto",          # auto | kernel | syscall
    "kernel_probe": "auto",   # auto | fentry | kprobe
    "buffer_pages": None,     # None: the loader's default (--buffer-pages, hidden: tests)
    "call_state": "auto",     # auto | hash: where a thread's call in flight is kept
                              # (--call-state, hidden: tests of older kernels' path)
    "fd_walk": "auto",        # auto | helpers: the syscall layer's fd -> socket walk through
                              # BTF loads where it can, or helper reads (--fd-walk, hidden: tests)
    "ring_reader": "auto",    # auto | bcc: read the ring buffer's pages, or bcc's callback
                              # (--ring-reader, hidden: tests and bench)
    "rw": "auto",             # auto | on | off: the syscall layer also hooks read(), write()
                              # and their vector forms (--rw)
}
