"""Who interrupted a dump (seed 002). A Go program dumps links with the Go netlink
library (Kubernetes' CNI plugins use it) while `ip` adds and deletes veth pairs in the
same netns: each dump the kernel marks NLM_F_DUMP_INTR is named with the changes that
hit the netns while it ran, and on the kernel layer a change the kernel made on its
own (a netns torn down deletes its veth peers from a kworker) as the kernel's."""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from tests.helpers.goclients import go_client
from tests.helpers.live import Run, hooks_args, nlbpf_cmd

pytestmark = pytest.mark.root
VM = bool(os.environ.get("NLBPF_VM"))
TIMEOUT = 900 if VM else 180
# veth pairs always there: a dump of 120 links takes several recv buffers, so that a
# change can come between two of its parts
PAIRS = 60
# the dumper stops once this many of its dumps were interrupted (it says how many)
INTERRUPTED = 3
CHANGE_TYPES = ("RTM_NEWLINK", "RTM_DELLINK")


def layers():
    # errors' auto is the socket layer here, which reads a change from its ACK (and its
    # sender's buffer); the syscall and kernel layers hold it with its request
    if os.environ.get("NLBPF_TEST_HOOKS"):
        return [[]]
    return [[], ["--hooks", "syscall"]]


@pytest.fixture
def links(netns):
    netns.batch([f"link add st{i} type veth peer name su{i}" for i in range(PAIRS)])
    return netns


def churn_and_dump(ns, dumper):
    """A shell line: ip adds and deletes veth pairs in ns while dumper dumps its links,
    until INTERRUPTED of its dumps were interrupted (or 3,000 dumps)."""
    churn = (f"i=0; while [ $i -lt 2000 ]; do i=$((i+1)); "
             f"ip -n {ns} link add sqa$i type veth peer name sqb$i; "
             f"ip -n {ns} link del sqa$i; done")
    return (f"({churn}) & churn=$!; "
            f"ip netns exec {ns} {dumper} -n 3000 -until {INTERRUPTED}; "
            f"kill $churn 2>/dev/null; wait")


def interrupted_count(stderr):
    """How many of its dumps the Go client saw interrupted (its stdout goes to nlbpf's
    stderr under `-- CMD`)."""
    m = re.search(r"dumps=(\d+) interrupted=(\d+)", stderr)
    assert m, stderr
    return int(m.group(2))


@pytest.mark.parametrize("layer", layers())
def test_each_interrupted_dump_names_the_changes_that_hit_its_netns(links, layer):
    if VM and os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        # the kernel and syscall layers hand a change over with the same code
        # (bpf/message.bpf.h): the VM's syscall run covers it, and the kernel runs'
        # time goes to what only they do (the next test)
        pytest.skip("message.bpf.h's, the same on the syscall layer: the VM's syscall run "
                    "covers it")
    dumper = go_client("linkdump")
    proc = subprocess.run(nlbpf_cmd() + ["errors", "--json", *layer, *hooks_args(), "--",
                                         "sh", "-c", churn_and_dump(links.name, dumper)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    seen_by_go = interrupted_count(proc.stderr)
    assert seen_by_go >= 1, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    dumps = [r for r in recs if r["comm"] == "linkdump" and (r.get("dump") or {}).get("intr")]
    # every one the client saw (and those of LinkList, which this library version lets by)
    assert len(dumps) >= seen_by_go, (seen_by_go, recs)
    named_any = 0
    for r in dumps:
        assert r["type"] == "RTM_GETLINK" and r["error"] is None, r
        named = r["dump"]["interrupted_by"]
        # the dump's window saw a change each time: only this netns's churn changes links
        assert named, r
        named_any += len(named)
        for c in named:
            assert c["by"] == "process" and c["comm"] == "ip", c
            assert c["type"] in CHANGE_TYPES and c["netns"] == r["netns"], c
            # never iproute2's probe (RTM_NEWLINK seq=0 → ENODEV): it changed nothing
            assert c["seq"] != 0, c
            if c["type"] == "RTM_NEWLINK":
                assert re.fullmatch(r"dev sqa\d+ kind veth.*", c["what"]), c
            if r["latency_us"] is not None:
                # made before the dump's last part (the syscall layer knows its end)
                assert c["ts"] <= r["ts"] + r["latency_us"] / 1e6 + 1e-3, (c, r)
    assert named_any >= len(dumps)


def test_trace_says_under_the_dump_who_interrupted_it(links):
    if VM:
        pytest.skip("userspace's part, the same on every kernel: the host runs it")
    dumper = go_client("linkdump")
    proc = subprocess.run(nlbpf_cmd() + ["trace", "--netns", links.name, "--",
                                         "sh", "-c", churn_and_dump(links.name, dumper)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    done = [i for i, line in enumerate(lines)
            if "linkdump" in line and "← NLMSG_DONE" in line and "DUMP_INTR" in line]
    assert len(done) >= interrupted_count(proc.stderr) >= 1, proc.stderr
    for i in done:
        under = lines[i + 1]
        assert re.match(r"    interrupted by: RTM_(NEW|DEL)LINK .* by ip \d+", under), under


def test_a_change_the_kernel_made_itself_is_named_as_the_kernels(links):
    """A netns deleted: the kernel deletes the veth peer it had in ours from a kworker,
    outside any request's handler. Only the kernel layer sees that happen."""
    from tests.integration.test_kernel_layer import kernel_layer_reason
    if os.environ.get("NLBPF_TEST_HOOKS") == "syscall":
        pytest.skip("this run tests the syscall layer (NLBPF_TEST_HOOKS=syscall)")
    if os.environ.get("NLBPF_KERNEL_PROBE") == "fentry":
        pytest.skip("the kprobe run covers the kernel layer (the fentry run's time budget)")
    if os.environ.get("NLBPF_TEST_HOOKS") != "kernel":
        why = kernel_layer_reason()
        if why:
            pytest.skip(f"kernel-function layer unavailable here: {why}")
    dumper = go_client("linkdump")
    others = [f"nlbpf-k{uuid.uuid4().hex[:6]}" for _ in range(12)]
    for i, other in enumerate(others):
        subprocess.run(["ip", "netns", "add", other], check=True)
        links.ip("link", "add", f"vk{i}", "type", "veth", "peer", "name", f"vo{i}",
                 "netns", other)
    run = Run(["errors", "--json", "--netns", links.name, "--hooks", "kernel"])
    try:
        dump = subprocess.Popen(["ip", "netns", "exec", links.name, dumper, "-n", "100000",
                                 "-until", "1000"], stdout=subprocess.DEVNULL)
        for other in others:
            subprocess.run(["ip", "netns", "del", other], check=True)
            time.sleep(1.0 if VM else 0.3)
        time.sleep(3.0 if VM else 1.0)
        dump.kill()
        dump.wait()
    finally:
        for other in others:
            subprocess.run(["ip", "netns", "del", other], capture_output=True)
        run.stop()
    kernel = [c for r in run.records() if (r.get("dump") or {}).get("intr")
              for c in r["dump"]["interrupted_by"] if c["by"] == "kernel"]
    assert kernel, run.stderr
    for c in kernel:
        assert c["type"] == "RTM_DELLINK" and re.fullmatch(r"dev vk\d+.*", c["what"]), c
        assert c["seq"] is None, c
