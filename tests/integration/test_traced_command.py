"""`nlbpf trace|errors|record -- CMD`: one command and what it forks, from its first request
to its exit, whose status nlbpf exits with; nothing of any other process."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers.live import NLCLIENT, closing_numbers, hooks_args, nlbpf_cmd

pytestmark = pytest.mark.root
TIMEOUT = 900 if os.environ.get("NLBPF_VM") else 120


def skip_on_fentry():
    # the follow table and its tracepoints are the same on every layer; the kprobe run
    # covers the kernel layer, and the fentry run is the VM's longest
    if os.environ.get("NLBPF_KERNEL_PROBE") == "fentry":
        pytest.skip("the kprobe run covers the kernel layer (the fentry run's time budget)")


def skip_in_vm():
    # what nlbpf does with a command's records is the same whatever kernel caught them;
    # the host runs it, and the VM's time (an attach costs ~30 s under emulation) goes
    # to what differs by kernel: the follow test
    if os.environ.get("NLBPF_VM"):
        pytest.skip("userspace's part, the same on every kernel: the host runs it")


def run_nlbpf(*args):
    """nlbpf ARGS -- CMD, with the test run's hook layer among nlbpf's own options."""
    args = list(args)
    cut = args.index("--") if "--" in args else len(args)
    return subprocess.run(nlbpf_cmd() + args[:cut] + hooks_args() + args[cut:],
                          capture_output=True, text=True, timeout=TIMEOUT)


class Bystander:
    """Another process making netlink requests the whole time: none may be shown."""

    def __init__(self, netns):
        self.proc = netns.popen([sys.executable, str(NLCLIENT), "getlink", "100000"])

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        return self.proc.pid


def test_trace_a_command_and_its_children_from_the_first_request_to_its_exit(netns):
    skip_on_fentry()
    bystander = Bystander(netns)
    try:
        script = (f"ip -n {netns.name} link show lo; "
                  f"ip -n {netns.name} route del 198.51.100.0/24 via 127.0.0.1")
        proc = run_nlbpf("trace", "--json", "--", "sh", "-c", script)
    finally:
        other = bystander.stop()
    assert proc.returncode == 2, proc.stderr     # ip route del's status, through sh
    recs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    pids = {r["pid"] for r in recs}
    assert other not in pids
    assert {r["comm"] for r in recs} == {"ip"}
    assert len(pids) == 2, pids             # the two ip processes sh forked
    first, second = sorted(pids)
    # `ip link show` is over in a millisecond: its first request is seen, so the
    # probes were attached before it ran
    own = [r for r in recs if r["pid"] == first]
    assert own[0]["direction"] == "request", own[0]
    assert any(r["type"] == "RTM_GETLINK" and r["direction"] == "request" for r in own)
    failed = [r for r in recs if r["pid"] == second and r.get("error") == "ESRCH"]
    assert len(failed) == 1 and failed[0]["type"] == "NLMSG_ERROR", recs
    assert closing_numbers(proc.stderr)["lost"] == 0
    # what the command printed is on stderr, not mixed into the JSON lines
    assert "lo:" in proc.stderr


def test_errors_of_a_command_exit_with_its_status(netns, tmp_path):
    skip_in_vm()
    proc = run_nlbpf("errors", "--json", "--", "ip", "-n", netns.name, "route", "del",
                     "198.51.100.0/24", "via", "127.0.0.1")
    assert proc.returncode == 2, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["type"], r["error"]) for r in recs if r["type"] != "RTM_NEWLINK"] == \
        [("RTM_DELROUTE", "ESRCH")], recs
    # a command killed by a signal: 128 + its number, as a shell says it
    proc = run_nlbpf("errors", "--", "sh", "-c", "kill -TERM $$")
    assert proc.returncode == 128 + 15, proc.stderr


def test_record_a_command_to_a_file(netns, tmp_path):
    skip_in_vm()
    path = tmp_path / "cmd.pcapng"
    proc = run_nlbpf("record", "-w", str(path), "--", "ip", "-n", netns.name, "link", "show",
                     "lo")
    assert proc.returncode == 0, proc.stderr
    read = subprocess.run(nlbpf_cmd() + ["read", str(path), "--json"], capture_output=True,
                          text=True, timeout=120)
    recs = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
    assert recs and {r["comm"] for r in recs} == {"ip"}
    assert any(r["type"] == "RTM_GETLINK" for r in recs)


def test_a_command_that_is_not_there_is_one_line():
    proc = subprocess.run(nlbpf_cmd() + ["trace", "--", "no-such-command-xyz"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 127
    assert proc.stderr.strip() == "nlbpf: no such command: no-such-command-xyz"


def test_verbose_shows_each_message_in_full_by_name(netns):
    """trace -v: under each line the header's fields and every attribute by name,
    nested ones indented; errors shows the failed request with the same renderer."""
    skip_in_vm()
    # (the default snap length: trace keeps link messages, stats and all, whole)
    netns.ip("link", "add", "nlv0", "type", "veth", "peer", "name", "nlv1")
    proc = run_nlbpf("trace", "-v", "--", "sh", "-c", f"ip -n {netns.name} link show lo; "
                     f"ip -n {netns.name} link show")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # iproute2's request, its flags by name (strace -X verbose writes them so)
    assert "    IFLA_EXT_MASK=RTEXT_FILTER_VF|RTEXT_FILTER_SKIP_STATS" in lines, lines[:20]
    assert any(line.startswith("    header: family=AF_UNSPEC ifi_type=ARPHRD_LOOPBACK index=1 "
                               "flags=IFF_UP|IFF_LOOPBACK") for line in lines), lines[:30]
    # nested attributes indented under their parent; nothing cut, a veth's ~1.5 KB neither
    assert any("dev nlv0" in line and "kind veth" in line for line in lines)
    i = lines.index("    IFLA_AF_SPEC:")
    assert lines[i + 1].startswith("      AF_INET")
    assert not any("[truncated" in line or "truncated:" in line for line in lines)
    assert not any("{'" in line or "None" in line for line in lines)
    proc = run_nlbpf("errors", "--", "ip", "-n", netns.name, "route", "del", "198.51.100.0/24",
                     "via", "127.0.0.1")
    assert "    header: family=AF_INET dst_len=24 src_len=0 tos=0 table=main" in proc.stdout
    assert "    attrs: RTA_DST=198.51.100.0 RTA_GATEWAY=127.0.0.1" in proc.stdout.splitlines()
