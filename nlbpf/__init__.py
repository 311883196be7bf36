"""nlbpf: an eBPF-based, kernel-side observer of Linux netlink traffic."""

__version__ = "0.1.0"
