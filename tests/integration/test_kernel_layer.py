"""What the kernel-function layer adds, and that both layers agree.

Tests that need the kernel layer skip, with the reason, on kernels where it
cannot load (this host: no kprobes, fentry refused); the VM harness
(vm/run-tests.sh) runs them on Debian's stock kernel with fentry and kprobes.
"""
import os
import resource
import subprocess
import sys
import time

import pytest

from tests.helpers.live import NLCLIENT, Run, nlbpf_cmd
from tests.helpers.prometheus import free_port, histogram_ok, scrape_until, value

TIMEOUT = 300
# a listener needs this long to subscribe (much longer under the VM's emulation)
SUBSCRIBE_S = 3.0 if os.environ.get("NLBPF_VM") else 0.5


def kernel_layer_reason():
    """None if the kernel layer loads here, else why not (asks nlbpf doctor)."""
    r = subprocess.run(nlbpf_cmd() + ["doctor", "--json"], capture_output=True, text=True)
    import json
    try:
        report = json.loads(r.stdout)
    except ValueError:
        return f"nlbpf doctor failed: {r.stderr.strip()}"
    return None if report.get("kernel_layer") else report.get("kernel_layer_reason", "unknown")


@pytest.fixture(scope="module")
def kernel_layer():
    if os.environ.get("NLBPF_TEST_HOOKS") == "syscall":
        pytest.skip("this run tests the syscall layer (NLBPF_TEST_HOOKS=syscall)")
    if os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        # asked for: each test's `--hooks kernel` fails loudly if it cannot load, so
        # doctor's load of every layer (~100 s under the VM's emulation) is not needed
        return True
    why = kernel_layer_reason()
    if why:
        if os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
            pytest.fail(f"the kernel layer was asked for but cannot load: {why}")
        pytest.skip(f"kernel-function layer unavailable here: {why}")
    return True


def start(*args):
    """nlbpf with the layer the test run asks for (NLBPF_TEST_HOOKS), default auto."""
    hooks = os.environ.get("NLBPF_TEST_HOOKS", "auto")
    return Run(list(args) + ["--hooks", hooks])


def test_unread_error_of_a_request_without_ack_is_reported(kernel_layer, netns):
    # RTM_DELROUTE for 198.51.100.0/24, no NLM_F_ACK; the sender exits without reading
    import socket
    import struct
    rtm = struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 0, 0, 0, 0)
    dst = struct.pack("=HH", 8, 1) + socket.inet_aton("198.51.100.0")
    payload = rtm + dst
    msg = struct.pack("=IHHII", 16 + len(payload), 25, 0x1, 4242, 0) + payload
    run = start("errors", "--json")
    proc = netns.popen([sys.executable, str(NLCLIENT), "raw", msg.hex()])
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    pid = __import__("json").loads(out)["pid"]
    run.stop()
    recs = [r for r in run.records() if r["pid"] == pid and r["type"] == "RTM_DELROUTE"]
    assert len(recs) == 1, run.stdout_lines
    assert recs[0]["error"] == "ESRCH"
    assert "NLM_F_ACK" not in recs[0]["flags"]
    assert recs[0]["request"]["attrs"]["RTA_DST"] == "198.51.100.0"


def test_route_add_notification_is_linked_to_the_adding_process(nlbpf, netns):
    # The syscall layer sees notifications as a listener receives them; the
    # listener starts after the probes so that its first recvmsg is seen whole.
    run = nlbpf("trace", "--json")
    monitor = netns.popen(["ip", "monitor", "route"])
    try:
        time.sleep(SUBSCRIBE_S)
        proc = subprocess.Popen(["ip", "-n", netns.name, "route", "add", "192.0.2.0/24", "dev", "lo"])
        proc.wait(TIMEOUT)
        run.stop(settle=1.0)
    finally:
        monitor.kill()
        monitor.wait()
    notes = [r for r in run.records() if r["direction"] == "notify" and r["type"] == "RTM_NEWROUTE"
             and r["netns"] == netns.inode
             and (r["message"].get("attrs") or {}).get("RTA_DST") == "192.0.2.0"]
    assert notes, [r["summary"] for r in run.records()][-20:]
    assert all(isinstance(n["origin"], dict) and n["origin"]["pid"] == proc.pid for n in notes)
    assert all(n["origin"]["comm"] == "ip" for n in notes)
    # the seq of the request that caused it (the kernel layer sees it inside that
    # request's handler; the others by the seq it carries)
    [req] = [r for r in run.records() if r["pid"] == proc.pid and r["direction"] == "request"
             and r["type"] == "RTM_NEWROUTE"]
    assert all(n["origin"]["seq"] == req["seq"] for n in notes), (req["seq"], notes[0]["origin"])
    assert all(f"from ip {proc.pid} seq={req['seq']}" in n["summary"] for n in notes)


def test_notifications_of_a_link_losing_carrier_come_from_the_kernel(kernel_layer, nlbpf, netns):
    netns.ip("link", "add", "nlva", "type", "veth", "peer", "name", "nlvb")
    netns.ip("link", "set", "nlva", "up")
    netns.ip("link", "set", "nlvb", "up")
    netns.ip("addr", "add", "2001:db8::1/64", "dev", "nlvb", "nodad")
    time.sleep(1.5)
    run = nlbpf("trace", "--json")
    monitor = netns.popen(["ip", "monitor", "link", "route"])
    try:
        time.sleep(SUBSCRIBE_S)
        proc = subprocess.Popen(["ip", "-n", netns.name, "link", "set", "nlva", "down"])
        proc.wait(TIMEOUT)
        time.sleep(2.0)          # linkwatch reports the peer's carrier loss from a kworker
        run.stop(settle=0.5)
    finally:
        monitor.kill()
        monitor.wait()
    notes = [r for r in run.records() if r["direction"] == "notify" and r["netns"] == netns.inode]
    by_kernel = [n for n in notes if n["origin"] == "kernel"]
    by_ip = [n for n in notes if isinstance(n["origin"], dict) and n["origin"]["pid"] == proc.pid]
    assert by_ip, "the admin-down of nlva is the ip process's doing"
    peer = [n for n in by_kernel if n["type"] == "RTM_NEWLINK"
            and (n["message"].get("attrs") or {}).get("IFLA_IFNAME") == "nlvb"]
    assert peer, [n["summary"] for n in notes]


def test_request_waiting_for_rtnl_names_the_holder(nlbpf, netns):
    # One request holds rtnl for long: delete 400 links at once by group.
    netns.batch([f"link add nlb{i} group 7 type bridge" for i in range(400)])
    run = nlbpf("slow", "--threshold", "20ms", "--json")
    holder = subprocess.Popen(["ip", "-n", netns.name, "link", "del", "group", "7"])
    time.sleep(0.05)
    waiter = subprocess.Popen(["ip", "-n", netns.name, "link", "set", "lo", "mtu", "65536"])
    waiter.wait(TIMEOUT)
    holder.wait(TIMEOUT)
    run.stop()
    # (not the requests each made next, which slow shows after a slow one)
    recs = {r["pid"]: r for r in run.records() if not r.get("after_slow")}
    assert holder.pid in recs, "the bulk delete itself is slow"
    held = recs[holder.pid]
    if os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        # the kernel layer sees the handler run, and says so in the text too
        assert held["handler_us"] > 0, held
    if held.get("handler_us"):
        assert "; in its handler " in held["summary"], held["summary"]
    w = recs.get(waiter.pid)
    # Overlapping only the hold's last few ms says little about lock wait vs work
    # (an emulated vCPU's stall alone can pass the threshold).
    if w is None or w["lock_wait_us"] < 10_000:
        pytest.skip(f"the waiter did not overlap the holder's rtnl hold this time: {w}")
    assert w["lock_wait_us"] > 0.5 * w["latency_us"], w
    assert w["holder"] == {"pid": holder.pid, "comm": "ip", "work": None}, w
    assert "mutex held by ip" in w["summary"]
    # what ran meanwhile, under the holder: the waiter, whose call (syscall layer) or
    # handler (kernel layer: handed over as a span once it ran SPAN_MIN_NS) ended before
    # the holder's did. (Not the other way round: the holder lets rtnl go, then goes on
    # unregistering the bridges in the same call and handler, after the waiter is done.)
    assert any(c["pid"] == waiter.pid for c in held["concurrent"]), (held["concurrent"], w)


def test_kernel_and_syscall_layers_see_the_same_traffic_at_the_same_cost(kernel_layer, netns):
    """The same ip -batch, bare and under `trace --json` with each layer: both layers
    see every request and pair every ack, lose nothing, and slow the batch alike.
    Bare batches run before and after the traced ones (drift hits all alike).

    The cost is the batch's own CPU time (user+sys of `ip`, from the reaped child's
    rusage): the probes run inside its syscalls, so they show there, while time the
    emulated vCPU gave nlbpf's reader or anything else does not. Wall time under the
    VM's emulation swung a 0.1 s batch by ±30% between runs of the same layer."""
    n, reps = 300, 3
    lines = [f"route add 10.77.{i // 250}.{i % 250}/32 dev lo" for i in range(n)]
    lines += [line.replace("add", "del") for line in lines]
    times = {"bare": [], "kernel": [], "syscall": []}
    walls = {"bare": [], "kernel": [], "syscall": []}
    counts = {}

    def cpu_of_children():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    def batch(kind):
        # nlbpf (also a child) is reaped only after its batches: the delta is ip's
        c0, t0 = cpu_of_children(), time.monotonic()
        pid = netns.batch(lines)
        walls[kind].append(time.monotonic() - t0)
        return pid, cpu_of_children() - c0

    times["bare"] += [batch("bare")[1] for _ in range(reps - 1)]
    for hooks in ("kernel", "syscall"):
        run = Run(["trace", "--json", "--hooks", hooks])
        pids = []
        for _ in range(reps):
            pid, elapsed = batch(hooks)
            pids.append(pid)
            times[hooks].append(elapsed)
        run.stop(settle=1.0)
        recs = [r for r in run.records() if r["pid"] in pids]
        reqs = [r for r in recs if r["direction"] == "request"
                and r["type"] in ("RTM_NEWROUTE", "RTM_DELROUTE")]
        acks = {(r["pid"], r["seq"]) for r in recs if r["direction"] == "reply"
                and r["type"] == "NLMSG_ERROR" and r["errno"] is None
                and r["latency_us"] is not None}
        counts[hooks] = (len(reqs), len(acks), run.lost())
    times["bare"] += [batch("bare")[1] for _ in range(reps - 1)]
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    ratio = {k: med[k] / med["bare"] for k in ("kernel", "syscall")}
    print(f"requests, paired acks, lost: {counts}; batch of {len(lines)} requests, median "
          f"CPU seconds: {med}; ratio to bare: kernel {ratio['kernel']:.2f}x, "
          f"syscall {ratio['syscall']:.2f}x; wall seconds: {walls}")
    assert counts["kernel"] == counts["syscall"] == (reps * 2 * n, reps * 2 * n, 0), counts
    # the same cost, within the batch's bare CPU time of each other: under the VM's
    # software emulation (the only place this layer runs for tests) the vCPU's time
    # accounting swings too far for a finer bound. The same fentry build measured
    # 2.46x and 1.57x in two runs of one commit (the syscall layer 2.46x and 2.45x:
    # 0.00 and 0.87 apart); kprobes enter through an int3 trap, which emulation makes
    # far dearer (0.21 to 0.56 apart). The bound catches a gross regression; the
    # layers' costs are compared in the bench (vm/run-tests.sh --layers bench).
    assert abs(ratio["kernel"] - ratio["syscall"]) <= 1.0, (ratio, times, walls)


def test_serve_counts_and_times_each_request_type(kernel_layer, netns):
    """serve on the kernel layer: failed requests per errno and latency histograms per
    type from its maps. Its probes are the same whichever way the layer attaches: the
    VM's kprobe run covers it (the fentry run has no time to spare)."""
    if os.environ.get("NLBPF_KERNEL_PROBE") == "fentry":
        pytest.skip("the same maps as on kprobes, which the VM's kprobe run tests")
    port = free_port()
    run = start("serve", "--listen", f"127.0.0.1:{port}", "--interval", "0.5", "--slow", "off")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for i in range(3):
            netns.ip("route", "del", f"198.51.{i}.0/24", check=False)
        got = scrape_until(url, lambda got: value(
            got, "nlbpf_request_errors_total", netns=netns.name, errno="ESRCH") == 3, TIMEOUT)
        assert value(got, "nlbpf_request_errors_total", netns=netns.name, errno="ESRCH",
                     type="RTM_DELROUTE", comm="ip") == 3
        assert histogram_ok(got, "nlbpf_request_duration_seconds", type="RTM_DELROUTE") >= 3
        assert histogram_ok(got, "nlbpf_request_lock_wait_seconds", type="RTM_DELROUTE") >= 3
        layer = [l["layer"] for n, l, v in got if n == "nlbpf_layer" and l["capture"] == "counters"]
        assert layer and layer[0].startswith("kernel"), layer
    finally:
        run.stop()
