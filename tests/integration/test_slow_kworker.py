"""slow names what a kworker holding rtnl is running, and shows the request the user
made after the one that waited. Deleting a netns full of links hands the teardown to a
kworker (cleanup_net), which holds rtnl while it unregisters them; `ip link set` in
another netns waits for it, in its first request: iproute2's feature probe. The waiter's
record names the holder by its comm and by its work item's function (read from the
worker through BTF), and the same thread's next requests follow it, the user's own
RTM_NEWLINK among them."""
import os
import subprocess
import time

import pytest

from tests.helpers.live import Netns, Run, hooks_args, require_sock_layer

pytestmark = pytest.mark.root
VM = bool(os.environ.get("NLBPF_VM"))
TIMEOUT = 600 if VM else 120
BRIDGES = 400


def layers():
    # auto is the syscall layer here at this threshold; the socket layer finds the waiter
    # with its iterator and reads the next requests at their sends' ends
    if os.environ.get("NLBPF_TEST_HOOKS"):
        return [[]]
    return [[], ["--hooks", "sock"]]


@pytest.mark.parametrize("layer", layers())
def test_a_kworker_holding_rtnl_is_named_with_its_work_function(netns, layer):
    if VM and os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        # the holder's work and the next requests are read by code every layer shares
        # (bpf/waits.bpf.h, message.bpf.h): the VM's syscall run covers it within CI's
        # time for each layer; scripts/examples-kernel.sh shows it on fentry
        pytest.skip("waits.bpf.h's and message.bpf.h's, the same on the syscall layer: "
                    "the VM's syscall run covers it")
    if layer:
        require_sock_layer()
    doomed = Netns()
    try:
        doomed.batch([f"link add nlk{i} type bridge" for i in range(BRIDGES)])
        run = Run(["slow", "--threshold", "20ms", "--json", *layer, *hooks_args()])
        waiters = []
        try:
            subprocess.run(["ip", "netns", "del", doomed.name], check=True)
            # the kworker takes rtnl soon after; keep asking for it meanwhile
            deadline = time.monotonic() + (20 if VM else 3)
            while time.monotonic() < deadline:
                waiter = subprocess.Popen(["ip", "-n", netns.name, "link", "set", "lo", "mtu",
                                           "65536"])
                waiter.wait(TIMEOUT)
                waiters.append(waiter.pid)
        finally:
            run.stop()
    finally:
        subprocess.run(["ip", "netns", "del", doomed.name], capture_output=True)
    held = [r for r in run.records() if r["pid"] in waiters and r.get("holder")
            and r["holder"]["comm"].startswith("kworker") and r["direction"] == "request"]
    if not held:
        pytest.skip(f"no request waited for the teardown's rtnl hold this time: "
                    f"{[r['summary'] for r in run.records()][:5]}")
    for r in held:
        assert r["holder"]["work"] == "cleanup_net", r
        assert r["lock_wait_us"] > 0.5 * r["latency_us"], r
        assert f"mutex held by {r['holder']['comm']} {r['holder']['pid']}, running cleanup_net" \
            in r["summary"], r["summary"]
        assert r["after_slow"] is False
    recs = run.records()
    for r in held:
        later = [n for n in recs if n["tid"] == r["tid"] and n.get("after_slow")]
        assert 1 <= len(later) <= 3, later
        assert all(n["ts"] >= r["ts"] for n in later)
        # the request `ip link set lo mtu 65536` is for: the user's own
        assert any(n["type"] == "RTM_NEWLINK" and "mtu 65536" in n["summary"]
                   and n["error"] is None for n in later), [n["summary"] for n in later]
        assert all("after the slow one, the same thread's next" in n["summary"] for n in later)
