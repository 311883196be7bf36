"""Smoke check run in the test VM before the test suite (layer "smoke").

Proves the guest can do what the kernel-probe tests need: bcc loads, fentry
is supported, a kprobe and an fentry probe on netlink_sendmsg both count
events, nlmon captures netlink traffic, and the checkout's nlbpf is the one
installed. Then that `--hooks auto` falls back where the socket layer cannot
load (6.1 has no sock:sk_data_ready): doctor says so, and `nlbpf errors`
catches a failing route deletion on the kernel-function layer. Prints one
line per check and a last summary line; exit 1 if any check failed.
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from bcc import BPF

results = {}
failed = []


def check(name, fn):
    t = time.monotonic()
    try:
        value, ok = fn()
    except Exception as e:  # report and go on with the other checks
        value, ok = f"{type(e).__name__}: {e}", False
    results[name] = value
    print(f"{name}: {value} ({time.monotonic() - t:.1f}s){'' if ok else ' FAILED'}", flush=True)
    if not ok:
        failed.append(name)


def netlink_traffic():
    subprocess.run(["ip", "link", "show"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(["ip", "addr", "show"], stdout=subprocess.DEVNULL, check=True)


COUNTER = """
BPF_ARRAY(cnt, u64, 1);
static __always_inline void bump(void) {
    int k = 0;
    u64 *v = cnt.lookup(&k);
    if (v) __sync_fetch_and_add(v, 1);
}
"""


def count_with(text, attach=None):
    b = BPF(text=COUNTER + text)
    try:
        if attach:
            attach(b)
        netlink_traffic()
        n = b["cnt"][ctypes.c_int(0)].value
    finally:
        b.cleanup()
    return n, n > 0


def kprobe():
    return count_with(
        "int on_sendmsg(void *ctx) { bump(); return 0; }",
        lambda b: b.attach_kprobe(event="netlink_sendmsg", fn_name="on_sendmsg"))


def fentry():
    # Forward declarations keep the compile fast under emulation and avoid
    # bcc's "conflicting types" error.
    return count_with(
        "struct socket; struct msghdr;\n"
        "KFUNC_PROBE(netlink_sendmsg, struct socket *sock, struct msghdr *msg, unsigned long len)\n"
        "{ bump(); return 0; }")


def nlmon():
    subprocess.run(["modprobe", "nlmon"], check=True)
    subprocess.run(["ip", "link", "add", "nlmon0", "type", "nlmon"], check=True)
    try:
        subprocess.run(["ip", "link", "set", "nlmon0", "up"], check=True)
        netlink_traffic()
        with open("/sys/class/net/nlmon0/statistics/rx_packets") as f:
            n = int(f.read())
    finally:
        subprocess.run(["ip", "link", "del", "nlmon0"])
    return n, n > 0


def installed_nlbpf():
    import nlbpf
    where = os.path.dirname(nlbpf.__file__)
    cli = subprocess.run(["nlbpf", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"{where} cli_rc={cli.returncode}", where == "/opt/nlbpf/nlbpf" and cli.returncode == 0


def auto_layers():
    r = subprocess.run(["nlbpf", "doctor", "--json"], capture_output=True, text=True, timeout=900)
    report = json.loads(r.stdout)
    sock, chosen = report["layers"]["sock"], report["commands"]
    value = " ".join(f"{c}:{layer.split()[0]}" for c, layer in chosen.items())
    if sock["loads"]:
        return f"{value} (sock loads)", True     # a kernel with sk_data_ready: nothing falls back
    ok = "sk_data_ready" in sock["detail"] and all(l.startswith("kernel") for l in chosen.values())
    return f"{value} (sock: {sock['detail']})", ok


def errors_on_auto():
    ns = "nlbpf-smoke"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    run = subprocess.Popen(["nlbpf", "errors", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        err = ""
        while "Tracing" not in err:          # the lines before it say which layer loaded
            line = run.stderr.readline()
            if not line:
                raise RuntimeError(f"nlbpf errors exited: {err.strip()}")
            err += line
        subprocess.run(["ip", "-n", ns, "route", "del", "198.51.100.0/24"],
                       stderr=subprocess.DEVNULL)
        time.sleep(2)
        run.send_signal(signal.SIGINT)
        out, rest = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        subprocess.run(["ip", "netns", "del", ns])
    hooks = next((l for l in err.splitlines() if l.startswith("Hooks:")), "no Hooks line")
    recs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    caught = [r for r in recs if r["type"] == "RTM_DELROUTE" and r["error"] == "ESRCH"]
    return f"caught={len(caught)} {hooks.split(' (')[0]}", len(caught) == 1 and run.returncode == 0


check("support_kfunc", lambda: (BPF.support_kfunc(), bool(BPF.support_kfunc())))
check("kprobe_events", kprobe)
check("fentry_events", fentry)
check("nlmon_rx", nlmon)
check("nlbpf", installed_nlbpf)
check("auto_layers", auto_layers)
check("errors_auto", errors_on_auto)

summary = " ".join(f"{k}={str(v).split()[0]}" for k, v in results.items())
print(("FAIL " + ",".join(failed) + " " if failed else "ok ") + summary)
sys.exit(1 if failed else 0)
