"""nlbpf doctor: what this machine offers nlbpf, hook by hook."""
import json
import os
import platform

from ..capture import environment
from ..capture.btf import BTFError, probe_offsets
from ..errors import NlbpfError

SYSCALLS = ("sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg", "recvmmsg")
KERNEL_FUNCTIONS = ("netlink_sendmsg", "netlink_unicast", "netlink_broadcast", "netlink_ack",
                    "rtnetlink_rcv_msg", "genl_rcv_msg", "netlink_dump")


def _check(name, ok, detail):
    return {"hook": name, "ok": bool(ok), "detail": detail}


def checks():
    out = []
    out.append(_check("root", os.geteuid() == 0,
                      "running as root" if os.geteuid() == 0 else "not root: probes cannot load"))
    try:
        bcc = environment.import_bcc()
        out.append(_check("bcc", True, f"bcc from {os.path.dirname(bcc.__file__)}"))
    except NlbpfError as e:
        bcc = None
        out.append(_check("bcc", False, str(e)))
    try:
        path, exact = environment.kernel_headers()
        out.append(_check("kernel headers", True,
                          f"{path}" + ("" if exact else
                                       f" (generic headers, not {platform.release()}'s: "
                                       "portable hooks only; offsets come from BTF)")))
    except NlbpfError as e:
        out.append(_check("kernel headers", False, str(e)))
    tfs = environment.tracefs()
    out.append(_check("tracefs", tfs, tfs or "not mounted (mount -t tracefs tracefs /sys/kernel/tracing)"))
    try:
        offs = probe_offsets()
        out.append(_check("BTF struct offsets", True,
                          f"{len(offs)} offsets from /sys/kernel/btf/vmlinux "
                          f"(e.g. netlink_sock.portid at {offs['OFF_NLSK_PORTID']})"))
    except BTFError as e:
        out.append(_check("BTF struct offsets", False, f"{e}: socket lookup from fd impossible"))
    missing = [s for s in SYSCALLS if not environment.tracepoint_exists("syscalls", f"sys_enter_{s}")]
    out.append(_check("syscall tracepoints", not missing,
                      "sendmsg/sendto/sendmmsg/recvmsg/recvfrom/recvmmsg" if not missing
                      else f"missing: {', '.join(missing)} (CONFIG_FTRACE_SYSCALLS)"))
    out.append(_check("netlink:netlink_extack", environment.tracepoint_exists("netlink", "netlink_extack"),
                      "kernel error text for every request" if environment.tracepoint_exists("netlink", "netlink_extack")
                      else "missing: only extack carried in replies (NLM_F_ACK_TLVS) is shown"))
    locks = environment.tracepoint_exists("lock", "contention_begin")
    out.append(_check("lock:contention_begin/end", locks,
                      "lock wait split out in `slow`" if locks
                      else "missing (kernel < 5.19): `slow` cannot separate lock wait"))
    if bcc is not None:
        rb = bcc.BPF.support_ringbuf() if hasattr(bcc.BPF, "support_ringbuf") else True
        out.append(_check("ring buffer", rb, "BPF ring buffer" if rb else "missing: perf buffer used instead"))
        kfunc = bcc.BPF.support_kfunc()
        out.append(_check("fentry/fexit", kfunc, "BTF trampolines available" if kfunc
                          else "not available here (kernel-function layer falls back to kprobes)"))
    kprobes = os.path.exists(os.path.join(tfs or "/sys/kernel/tracing", "kprobe_events"))
    out.append(_check("kprobes", kprobes, "kprobe_events present" if kprobes
                      else "CONFIG_KPROBE_EVENTS off: no kprobes"))
    funcs = [f for f in KERNEL_FUNCTIONS if environment.kernel_function_exists(f)]
    out.append(_check("kernel functions", bool(funcs),
                      f"traceable: {', '.join(funcs)}" if funcs else "none traceable"))
    return out


def live_layer(results):
    ok = {r["hook"]: r["ok"] for r in results}
    needed = ("root", "bcc", "kernel headers", "tracefs", "BTF struct offsets", "syscall tracepoints")
    if all(ok.get(n) for n in needed):
        return "syscall", "syscall tracepoints + netlink_extack + lock contention"
    return None, "nothing can load: " + ", ".join(n for n in needed if not ok.get(n))


def run_doctor(as_json):
    results = checks()
    layer, why = live_layer(results)
    if as_json:
        print(json.dumps({"kernel": platform.release(), "layer": layer, "reason": why,
                          "checks": results}, indent=2))
    else:
        print(f"kernel {platform.release()}")
        for r in results:
            print(f"  [{'ok' if r['ok'] else '--'}] {r['hook']:<26} {r['detail']}")
        print(f"live layer: {layer or 'none'} ({why})")
    return 0 if layer else 1
