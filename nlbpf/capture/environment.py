"""What the running system offers: root, bcc, kernel headers, tracefs, hooks.

Each check either passes or raises NlbpfError with one line the user can act on.
`nlbpf doctor` reports the same facts without stopping at the first problem.
"""
import os
import platform

from ..errors import NlbpfError

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MERGED_HEADERS = "/var/lib/nlbpf/kernel-headers/default"


CAP_DAC_READ_SEARCH, CAP_SYS_RESOURCE, CAP_PERFMON, CAP_BPF = 2, 24, 38, 39
NEEDED_CAPS = {"CAP_BPF": CAP_BPF, "CAP_PERFMON": CAP_PERFMON}


def effective_caps(status="/proc/self/status"):
    """The effective capability mask of this process (0 if unreadable)."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def missing_caps(caps=None):
    """Names of the capabilities the probes need that this process lacks ([] for root)."""
    if caps is None:
        if os.geteuid() == 0:
            return []
        caps = effective_caps()
    return [name for name, bit in NEEDED_CAPS.items() if not caps >> bit & 1]


def require_root():
    """Root, or CAP_BPF + CAP_PERFMON (tracefs access is checked by require_tracefs)."""
    if missing_caps():
        raise NlbpfError("nlbpf needs root (or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH) "
                         "to load eBPF probes; run it with sudo")


def import_bcc():
    try:
        import bcc  # noqa: F401  (Debian's python3-bpfcc; not on PyPI)
    except ImportError:
        raise NlbpfError("bcc is not importable: install python3-bpfcc and use a venv made "
                         "with --system-site-packages (scripts/setup.sh does both)") from None
    return bcc


def kernel_headers():
    """(path or None, exact) for the headers bcc will compile against.

    Sets BCC_KERNEL_SOURCE when only the merged generic headers exist. Raises
    when bcc would find nothing at all.
    """
    release = platform.release()
    if os.environ.get("BCC_KERNEL_SOURCE"):
        path = os.environ["BCC_KERNEL_SOURCE"]
        if not os.path.isdir(os.path.join(path, "include")):
            raise NlbpfError(f"BCC_KERNEL_SOURCE={path} holds no kernel headers "
                             "(unset it, or run scripts/setup.sh)")
        return path, False
    build = f"/lib/modules/{release}/build"
    if os.path.isdir(os.path.join(build, "include")):
        return build, True
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return "/sys/kernel/kheaders.tar.xz", True
    if os.path.isdir(MERGED_HEADERS):
        path = os.path.realpath(MERGED_HEADERS)
        os.environ["BCC_KERNEL_SOURCE"] = path
        return path, False
    raise NlbpfError(f"no kernel headers for {release}: run scripts/setup.sh "
                     f"(it installs linux-headers-{release} or Debian's generic headers)")


def tracefs():
    """Path of the mounted tracefs, or None."""
    for root in TRACEFS_ROOTS:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    return None


def require_tracefs():
    root = tracefs()
    if root is None and any(os.path.isdir(r) and not os.access(r, os.X_OK) for r in TRACEFS_ROOTS):
        raise NlbpfError("cannot read tracefs (/sys/kernel/tracing is root's only): run as "
                         "root, or add CAP_DAC_READ_SEARCH to CAP_BPF and CAP_PERFMON")
    if root is None:
        raise NlbpfError("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing "
                         "(scripts/setup.sh does it)")
    return root


def tracepoint_exists(category, event):
    root = tracefs()
    return bool(root) and os.path.isdir(os.path.join(root, "events", category, event))


def kernel_function_exists(name):
    """True if `name` is a traceable kernel function (for kprobes/fentry)."""
    root = tracefs()
    if root:
        try:
            with open(os.path.join(root, "available_filter_functions")) as f:
                return any(line.split(" ", 1)[0].strip() == name for line in f)
        except OSError:
            pass
    return False
