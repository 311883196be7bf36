"""nlbpf doctor: what this machine offers nlbpf, hook by hook."""
import json
import os
import platform

from ..capture import environment
from ..capture import layers, ringbuf
from ..capture.layers import layer_order as order
from ..capture.btf import BTF, BTFError, probe_offsets
from ..errors import NlbpfError
from ..capture.loader import Capture
from ..capture.settings import CaptureSettings
from ..filters import Filters



def _check(name, ok, detail):
    return {"hook": name, "ok": bool(ok), "detail": detail}


def basic_checks():
    """What every layer needs (a layer is not tried without them), and bcc or None."""
    out = []
    missing = environment.missing_caps()
    if os.geteuid() == 0:
        why = "running as root"
    elif not missing:
        why = f"uid {os.geteuid()} with CAP_BPF and CAP_PERFMON"
    else:
        why = f"not root, and no {' or '.join(missing)}: probes cannot load"
    out.append(_check("root", not missing, why))
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
    return out, bcc


def hook_checks(bcc):
    """Which tracepoints, helpers and kernel functions there are."""
    out = []
    missing = [s for s in layers.SYSCALL_ENTRIES
               if not environment.tracepoint_exists("syscalls", f"sys_enter_{s}")]
    out.append(_check("syscall tracepoints", not missing,
                      "/".join(layers.SYSCALL_ENTRIES) if not missing
                      else f"missing: {', '.join(missing)} (CONFIG_FTRACE_SYSCALLS)"))
    skb = environment.tracepoint_exists("skb", "skb_copy_datagram_iovec")
    out.append(_check("skb:skb_copy_datagram_iovec", skb,
                      "who sent each buffer a netlink recv takes (the kernel, or a process)"
                      if skb else "missing: the syscall layer cannot load"))
    counted = layers.have_sock_length_tracepoints()
    out.append(_check("sock:sock_{send,recv}_length", counted,
                      "netlink calls outside the traced syscalls (io_uring, sendfile) counted"
                      if counted else "missing (Linux 6.7+): the syscall layer cannot count "
                      "netlink calls made through io_uring or sendfile"))
    out.append(_check("netlink:netlink_extack", environment.tracepoint_exists("netlink", "netlink_extack"),
                      "kernel error text for every request" if environment.tracepoint_exists("netlink", "netlink_extack")
                      else "missing: only extack carried in replies (NLM_F_ACK_TLVS) is shown"))
    socktp = [t for t in ("sk_data_ready", "sock_send_length")
              if not environment.tracepoint_exists("sock", t)]
    out.append(_check("socket tracepoints", not socktp,
                      "sock:sk_data_ready, sock:sock_send_length (the socket layer)" if not socktp
                      else f"missing: sock:{', sock:'.join(socktp)} (Linux 6.7+): no socket layer"))
    locks = environment.tracepoint_exists("lock", "contention_begin")
    out.append(_check("lock:contention_begin/end", locks,
                      "lock wait split out in `slow`" if locks
                      else "missing (kernel < 5.19): `slow` cannot separate lock wait"))
    if bcc is not None:
        rb = bcc.BPF.support_ringbuf() if hasattr(bcc.BPF, "support_ringbuf") else True
        why = ringbuf.supported()
        out.append(_check("ring buffer", rb, ("BPF ring buffer, its pages read directly" if why is None
                                              else f"BPF ring buffer, through bcc's callback ({why})")
                          if rb else "missing: perf buffer used instead"))
    ts = layers.have_task_storage("syscall")
    out.append(_check("task storage", ts, "a thread's call in flight kept with the task" if ts
                      else "missing (kernel < 5.11?): a hash map by thread id instead, ~30 ns more "
                           "per netlink syscall"))
    kprobes = layers.kprobes_available()
    out.append(_check("kprobes", kprobes, "kprobe PMU present" if kprobes
                      else "CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off: no kprobes"))
    try:
        hooks = layers.kernel_hooks(BTF.load())
        have = [h.function for h in hooks if h.present]
        lack = [h.function for h in hooks if not h.present]
        out.append(_check("kernel functions", not any(h.essential and not h.present for h in hooks),
                          f"in BTF and kallsyms: {', '.join(have) or 'none'}"
                          + (f"; missing: {', '.join(lack)}" if lack else "")))
    except BTFError as e:
        out.append(_check("kernel functions", False, str(e)))
    return out


def try_layer(hooks, kernel_probe="auto", mode="trace"):
    """Load a command's probes with this layer for real: (True, what loaded) or (False, why not)."""
    capture = Capture(mode=mode, filters=Filters(), slow_ns=DOCTOR_SLOW_NS,
                      settings=CaptureSettings(hooks=hooks, kernel_probe=kernel_probe,
                                               ask_again=True))
    try:
        capture.start()
        if capture.fd_walk:
            return True, f"{capture.layer} (fd -> socket: {capture.fd_walk})"
        return True, capture.layer
    except NlbpfError as e:
        return False, str(e)
    finally:
        capture.close()


DOCTOR_SLOW_NS = 500_000_000            # slow's default threshold
NAMES = {"fentry": "kernel layer, fentry", "kprobe": "kernel layer, kprobes",
         "sock": "socket layer", "syscall": "syscall layer"}


def layer_report(basics):
    """Which layers load here, tried side by side (the socket layer: errors' and slow's
    probes, which between them load all of its kinds of program): collect() gives
    {layer: (loads, detail)}."""
    missing = [r["hook"] for r in basics if not r["ok"]]
    if missing:
        why = "cannot try: " + ", ".join(missing)
        return lambda: {m: (False, why) for m in NAMES}
    return tried_side_by_side({
        "fentry": lambda: try_layer("kernel", "fentry"),
        "kprobe": lambda: try_layer("kernel", "kprobe"),
        "sock": try_sock_layer,
        "syscall": lambda: try_layer("syscall")})


def try_sock_layer():
    """errors' probes and slow's: between them, every kind of program the layer has."""
    errors = try_layer("sock", mode="errors")
    return try_layer("sock", mode="slow") if errors[0] else errors


def tried_side_by_side(tries):
    """Start each of {name: try} in a process of its own, all at once, and return what
    collects their results, {name: try()}: each compiles and loads a layer's probes
    (~0.6-1.5 s, mostly clang and the verifier), then waits for its hooks' detach (grace
    periods); one after the other they took ~4 s."""
    children = {}
    for name, attempt in tries.items():
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                ok, detail = attempt()
                out = json.dumps([ok, detail])
            except BaseException as e:       # a child must not go on as the parent
                out = json.dumps([False, f"{type(e).__name__}: {e}"])
            with os.fdopen(write_end, "w") as f:
                f.write(out)
            os._exit(0)
        os.close(write_end)
        children[name] = (pid, read_end)

    def collect():
        results = {}
        for name, (pid, read_end) in children.items():
            with os.fdopen(read_end) as f:
                said = f.read()
            os.waitpid(pid, 0)
            try:
                ok, detail = json.loads(said)
            except ValueError:
                ok, detail = False, "the check died before it could say why"
            results[name] = (bool(ok), detail)
        return results
    return collect


def command_layers(loads):
    """What --hooks auto takes for each command, given which layers load."""
    kernel = next((f"kernel ({m})" for m in ("fentry", "kprobe") if loads[m]), None)
    have = {"kernel": kernel, "sock": "sock" if loads["sock"] else None,
            "syscall": "syscall" if loads["syscall"] else None}
    return {mode: next((have[layer] for layer in order(mode, "auto", DOCTOR_SLOW_NS)
                        if have[layer]), None)
            for mode in ("trace", "errors", "top", "slow")}


def run_doctor(as_json):
    basics, bcc = basic_checks()
    collect = layer_report(basics)          # the layers load meanwhile
    results = basics + hook_checks(bcc)
    layers = collect()
    kernel = next((m for m in ("fentry", "kprobe") if layers[m][0]), None)
    per_command = command_layers({m: ok for m, (ok, _) in layers.items()})
    live = per_command["trace"]
    kernel_reason = None if kernel else "; ".join(f"{m}: {layers[m][1]}" for m in ("fentry", "kprobe"))
    if as_json:
        print(json.dumps({"kernel": platform.release(), "layer": live, "commands": per_command,
                          "kernel_layer": kernel, "kernel_layer_reason": kernel_reason,
                          "layers": {m: {"loads": ok, "detail": d} for m, (ok, d) in layers.items()},
                          "checks": results}, indent=2))
    else:
        print(f"kernel {platform.release()}")
        for r in results:
            print(f"  [{'ok' if r['ok'] else '--'}] {r['hook']:<29} {r['detail']}")
        print("layers (loaded for real):")
        for m, (ok_, detail) in layers.items():
            said = "loads" + (detail[len(m):] if detail.startswith(m + " (") else "")
            print(f"  [{'ok' if ok_ else '--'}] {NAMES[m]:<29} {said if ok_ else detail}")
        print("with --hooks auto: " + ", ".join(f"{mode} on {layer or 'nothing'}"
                                                 for mode, layer in per_command.items()))
    return 0 if live else 1
