"""Which hook layer can load on this kernel, and why not where it can't.

Three layers see the same traffic:
  kernel   fentry/fexit (or kprobes) on netlink_unicast, __netlink_sendskb,
           netlink_broadcast*, rtnetlink_rcv_msg, genl_rcv_msg, netlink_dump,
           netlink_ack: every path in and out of the kernel, handler time, rtnl wait
  sock     BTF tracepoints sock:sk_data_ready and sock:sock_send_length (6.7+):
           what the kernel queues to netlink sockets and the sends' requests, at
           a fraction of the others' cost, but without a request's start time
           (errors, top, slow; slow finds long calls with a task iterator)
  syscall  tracepoints of the send/recv syscalls: portable, present nearly everywhere
`auto` tries them in the order layer_order() gives for the command (like bcc's
opensnoop picks fentry or kprobe).
"""
import contextlib
import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache

from . import environment

KPROBE_PMU = "/sys/bus/event_source/devices/kprobe/type"


@dataclass
class Hook:
    define: str          # -D that compiles the probe in
    function: str        # kernel function
    kprobe: str          # program name when attached as a kprobe
    kretprobe: str       # program name for the return probe, or None
    essential: bool      # the layer makes no sense without it
    present: bool = False


# what the socket layer attaches, per command: (program in bpf/sock.bpf.c, target)
SOCK_PROGRAMS = {
    "errors": [("sock_ready", "sk_data_ready"), ("drops_poll", "bpf_iter_task_file")],
    "top": [("sock_ready", "sk_data_ready")],
    "slow": [("sock_sent", "sock_send_length"), ("slow_poll", "bpf_iter_task")],
}
# the BTF types those attach by
SOCK_ATTACH = ("btf_trace_sk_data_ready", "btf_trace_sock_send_length", "bpf_iter_task",
               "bpf_iter_task_file", "bpf_rdonly_cast")
# the types the fd -> sock walk through BTF pointers casts to (bpf_rdonly_cast), by -D
# define: the socket layer's, and the syscall layer's entry probes where the kernel has
# the kfunc
WALK_TYPES = {"FILE_ID": "file", "SOCKET_ID": "socket"}
# the types the socket layer's programs read a message through, and those of the walk
SOCK_TYPES = {"NLMSGHDR_ID": "nlmsghdr", "NLMSGERR_ID": "nlmsgerr", **WALK_TYPES}
# the syscall layer's entry probes (bpf/syscall.bpf.c's sc_enter_<call>), by syscall: every
# call that can carry a netlink socket's messages
SOCKET_CALLS = ("sendmsg", "sendto", "sendmmsg", "recvmsg", "recvfrom", "recvmmsg")
# A netlink socket takes these too, but every process's file I/O goes through them:
# hooked, each read and write of every process runs the entry and exit probes (~0.5 µs
# a call here: a loop of one-byte reads and writes took 2.4x its time, against 1.2x
# with the socket calls alone). Where the kernel has sock:sock_send_length and
# sock_recv_length (6.7+), netlink calls made through them are counted as not walked
# instead, unless --rw on; where it does not, nothing would count them, so they are hooked.
RW_CALLS = ("write", "writev", "pwritev2", "read", "readv", "preadv2")
SYSCALL_ENTRIES = SOCKET_CALLS + RW_CALLS
# slow on the socket layer finds long calls by looking at every thread this often
# (a tenth of the threshold, within these bounds); below SOCK_SLOW_MIN_NS that is
# too coarse, and auto takes another layer
POLL_MIN_NS, POLL_MAX_NS = 10_000_000, 100_000_000
SOCK_SLOW_MIN_NS = 10 * POLL_MIN_NS
# errors on the socket layer looks at netlink sockets' drop counters this often
DROPS_PERIOD_NS = 1_000_000_000


def poll_period_ns(slow_ns):
    return max(POLL_MIN_NS, min(POLL_MAX_NS, int(slow_ns or 0) // 10))


def layer_order(mode, choice, slow_ns=None):
    """The layers to try, best first. errors loses nothing on the socket layer but the
    latency of failed requests, so it is tried first there; top and slow see more on
    the kernel layer (latencies, handler time), trace needs every request's start."""
    if choice != "auto":
        return [choice]
    if mode == "errors":
        return ["sock", "kernel", "syscall"]
    if mode == "top" or (mode == "slow" and (slow_ns or 0) >= SOCK_SLOW_MIN_NS):
        return ["kernel", "sock", "syscall"]
    return ["kernel", "syscall"]


def sock_unavailable(mode, call_state="auto"):
    """None if the socket-tracepoint layer can serve `mode` on this kernel, else why not
    (the kernel's verifier has the last word when it loads). call_state: CaptureSettings'."""
    if mode not in SOCK_PROGRAMS:
        return f"it does not serve `{mode}` (no request start times: use kernel or syscall)"
    if call_state != "auto":
        return "it keeps per-thread state in task storage (--call-state hash asks for none)"
    if os.uname().machine != "x86_64":
        return "x86-64 only (it reads the syscall's registers)"
    missing = [t for _, t in SOCK_PROGRAMS[mode]
               if not t.startswith("bpf_iter_") and not environment.tracepoint_exists("sock", t)]
    if missing:
        return f"no sock:{', sock:'.join(missing)} tracepoint (Linux 6.7+)"
    return None


def kernel_methods(choice):
    return ["fentry", "kprobe"] if choice == "auto" else [choice]


@lru_cache(maxsize=1)
def kallsyms_text():
    """Names of kernel functions with a symbol (not inlined away)."""
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tT":
                    names.add(parts[2])
    except OSError:
        pass
    return names


def kernel_hooks(btf):
    text = kallsyms_text()
    funcs = btf.functions

    def have(name):
        return name in funcs and name in text

    broadcast = "netlink_broadcast_filtered" if have("netlink_broadcast_filtered") else "netlink_broadcast"
    hooks = [
        Hook("HOOK_UNICAST", "netlink_unicast", "kp_unicast", None, True),
        Hook("HOOK_SENDSKB", "__netlink_sendskb", "kp_sendskb", None, True),
        Hook("HOOK_BROADCAST_FILTERED" if broadcast.endswith("filtered") else "HOOK_BROADCAST",
             broadcast, "kp_broadcast", None, False),
        Hook("HOOK_RTNL_RCV", "rtnetlink_rcv_msg", "kp_handler", "kr_handler", False),
        Hook("HOOK_GENL_RCV", "genl_rcv_msg", "kp_handler", "kr_handler", False),
        Hook("HOOK_DUMP", "netlink_dump", "kp_dump", "kr_dump", False),
        Hook("HOOK_ACK", "netlink_ack", "kp_ack", None, False),
    ]
    for h in hooks:
        h.present = have(h.function)
    return hooks


# program types and helper ids from <linux/bpf.h>
PROG_TYPE = {"syscall": 5, "kprobe": 2, "fentry": 26}     # TRACEPOINT, KPROBE, TRACING
FUNC_TASK_STORAGE_GET, FUNC_GET_CURRENT_TASK_BTF = 156, 158


@lru_cache(maxsize=None)
def have_task_storage(layer):
    """Can programs of this layer ("syscall", "kprobe", "fentry") keep per-thread state in
    task storage? libbpf loads a two-instruction program per helper to find out (ms)."""
    try:
        probe = ctypes.CDLL("libbpf.so.1").libbpf_probe_bpf_helper
    except (OSError, AttributeError):
        return False
    probe.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return all(probe(PROG_TYPE[layer], helper, None) == 1
               for helper in (FUNC_TASK_STORAGE_GET, FUNC_GET_CURRENT_TASK_BTF))


def have_sock_length_tracepoints():
    return (environment.tracepoint_exists("sock", "sock_send_length")
            and environment.tracepoint_exists("sock", "sock_recv_length"))


def have_lock_tracepoints():
    return (environment.tracepoint_exists("lock", "contention_begin")
            and environment.tracepoint_exists("lock", "contention_end"))


def kprobes_available():
    return os.path.exists(KPROBE_PMU) or bool(
        environment.tracefs() and os.path.exists(os.path.join(environment.tracefs(), "kprobe_events")))


_FENTRY_TEST = """
KFUNC_PROBE(netlink_unicast, void *ssk, void *skb, u32 portid, int nonblock) { return 0; }
"""
_fentry_verdict = {}


def fentry_works(bcc):
    """None if a tiny fentry program loads and attaches here, else why not."""
    if "v" not in _fentry_verdict:
        if not bcc.BPF.support_kfunc():
            _fentry_verdict["v"] = "no BTF trampolines (fentry) in this kernel"
        else:
            try:
                with quiet_stderr():         # libbpf prints its own copy of the refusal
                    b = bcc.BPF(text=_FENTRY_TEST)
                b.cleanup()
                _fentry_verdict["v"] = None
            except Exception as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                if "super-user" in msg or "ermission" in msg:
                    msg = "the kernel refuses to load fentry programs (EPERM)"
                _fentry_verdict["v"] = msg
    return _fentry_verdict["v"]


@contextlib.contextmanager
def quiet_stderr():
    """Silence fd 2 (C libraries write there directly) for a probe that may fail."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def kernel_unavailable(bcc, btf, method):
    """None if `method` (fentry|kprobe) can carry the kernel layer, else the reason."""
    if method == "fentry":
        return fentry_works(bcc)
    if method == "kprobe":
        if not kprobes_available():
            return "kprobes are not available (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off)"
        return None
    return f"unknown probe method {method}"
