"""The capture engine end to end: real probes, real processes, real errors."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers.live import bpftool_json, family, once_in_the_vm
from nlbpf.capture.btf import BTF
from nlbpf.capture.layers import SOCKET_CALLS, SYSCALL_ENTRIES, have_task_storage

TIMEOUT = 120


def by_pid(records, pid):
    return [r for r in records if r["pid"] == pid]


def layer_of(run):
    """The hook layer a run loaded: syscall, sock, fentry or kprobe (its "Hooks:" line)."""
    hooks = next(line.split() for line in run.stderr_lines if line.startswith("Hooks:"))
    return hooks[2].strip("()") if hooks[1] == "kernel" else hooks[1]


def syscall_layer_only(run, why):
    if layer_of(run) != "syscall":
        run.stop()
        pytest.skip(f"syscall layer only: {why}")


def skip_if_kernel_layer_asked(why):
    """Skip before starting anything when the run asks for the kernel layer (the VM:
    an attach there takes ~30 s of emulated CPU). Else: the arguments that ask for the
    syscall layer when the run asks for none (auto would take the socket layer for
    errors and top here, whose own tests are in test_sock_layer.py)."""
    if os.environ.get("NLBPF_TEST_HOOKS") == "kernel":
        pytest.skip(f"syscall layer only: {why}")
    return [] if os.environ.get("NLBPF_TEST_HOOKS") else ["--hooks", "syscall"]


# where the probes keep a thread's call in flight: task storage (auto, here), or the
# hash map kernels without task storage for tracing programs get
CALL_STATES = pytest.mark.parametrize("call_state", ["auto", "hash"])


@CALL_STATES
def test_failed_route_delete_is_reported_with_pid_errno_and_dst(nlbpf, netns, call_state):
    run = nlbpf("errors", "--json", "--call-state", call_state)
    maps = json.loads(subprocess.run(["bpftool", "map", "show", "-j"], capture_output=True,
                                     text=True, check=True).stdout)
    kinds = {m["type"] for m in maps if m.get("name") == "calls"}
    layer = layer_of(run)
    tasks = call_state == "auto" and (layer == "sock" or have_task_storage(layer))
    assert kinds == ({"task_storage"} if tasks else {"hash"}), (kinds, layer)
    if call_state == "hash":
        assert layer != "sock", "the socket layer needs task storage: auto goes elsewhere"
    proc = subprocess.Popen(["ip", "-n", netns.name, "route", "del", "198.51.100.0/24",
                             "via", "127.0.0.1"], stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0 and "No such process" in err
    run.stop()
    recs = [r for r in by_pid(run.records(), proc.pid) if r["type"] == "RTM_DELROUTE"]
    assert len(recs) == 1, run.stdout_lines
    rec = recs[0]
    assert rec["comm"] == "ip"
    assert rec["error"] == "ESRCH" and rec["errno"] == 3
    assert rec["strerror"] == "No such process"
    assert rec["direction"] == "request"
    assert rec["protocol"] == "route"
    assert rec["netns"] == netns.inode
    assert rec["request"]["attrs"]["RTA_DST"] == "198.51.100.0"
    assert rec["request"]["attrs"]["RTA_GATEWAY"] == "127.0.0.1"
    assert "NLM_F_REQUEST" in rec["flags"] and "NLM_F_ACK" in rec["flags"]
    if layer == "sock":
        # the request is rebuilt from the error's echo: when it began is not known
        assert rec["latency_us"] is None
        assert "no latency" in run.stderr
    else:
        assert rec["latency_us"] is not None and rec["latency_us"] >= 0
    assert "ESRCH" in rec["summary"] and "RTM_DELROUTE" in rec["summary"]
    assert run.lost() == 0


PYROUTE2_DEL_OIF0 = textwrap.dedent("""
    import json, os
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    with IPRoute() as ipr:
        try:
            ipr.route("del", dst="198.51.100.0/24", oif=0)
            code = 0
        except NetlinkError as e:
            code = e.code
    print(json.dumps({"pid": os.getpid(), "code": code}))
""")


def test_pyroute2_delete_with_oif_zero_shows_rta_oif_0(nlbpf, netns):
    # pyroute2 0.9 duplicates its socket fd (F_DUPFD_CLOEXEC) before use: the
    # probes must find the socket from whatever fd carries the traffic.
    run = nlbpf("errors", "--json")
    proc = netns.popen([sys.executable, "-c", PYROUTE2_DEL_OIF0])
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    result = __import__("json").loads(out.strip().splitlines()[-1])
    assert result["code"] == 3
    run.stop()
    recs = [r for r in by_pid(run.records(), result["pid"]) if r["type"] == "RTM_DELROUTE"]
    assert len(recs) == 1, run.stdout_lines
    rec = recs[0]
    assert rec["error"] == "ESRCH"
    assert rec["request"]["attrs"]["RTA_OIF"] == 0
    assert rec["request"]["attrs"]["RTA_DST"] == "198.51.100.0"
    assert "oif 0" in rec["summary"]


@pytest.mark.parametrize("fd_walk", ["auto", "helpers"])
def test_both_fd_walks_find_the_socket_behind_a_duplicated_fd(nlbpf, netns, fd_walk):
    """The syscall layer's entry probes find fd -> socket through BTF pointers where the
    kernel has bpf_rdonly_cast (6.2+), else by helper reads (--fd-walk helpers: the
    older kernels' build, here). Both follow pyroute2's duplicated fd, and both time
    the request from the send."""
    hooks = skip_if_kernel_layer_asked("the fd walk is the syscall layer's")
    btf = "bpf_rdonly_cast" in BTF.load().attach_ids
    if fd_walk == "helpers" and not btf:
        pytest.skip("this kernel has no bpf_rdonly_cast (6.2+): auto is the helper build")
    run = nlbpf("trace", "--json", *hooks, "--fd-walk", fd_walk)
    syscall_layer_only(run, "the fd walk is the syscall layer's")
    # which build is attached: the loader names its own loads nl_btf_<call>
    entries = {p["tracepoint"]: p["prog_id"] for p in bpftool_json("perf", "show")
               if p.get("pid") in family(run.proc.pid)
               and p.get("tracepoint", "").startswith("sys_enter_")}
    # read/write are hooked unless the kernel can count them instead (--rw auto; it says so)
    counted = "read(), write() and their vector forms are counted" in run.stderr
    assert len(entries) == len(SOCKET_CALLS if counted else SYSCALL_ENTRIES), entries
    names = {bpftool_json("prog", "show", "id", str(i))["name"] for i in entries.values()}
    btf = btf and fd_walk == "auto"
    assert all(n.startswith("nl_btf_" if btf else "sc_enter_") for n in names), names
    proc = netns.popen([sys.executable, "-c", PYROUTE2_DEL_OIF0])
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    pid = json.loads(out.strip().splitlines()[-1])["pid"]
    run.stop()
    mine = by_pid(run.records(), pid)
    req = [r for r in mine if r["direction"] == "request" and r["type"] == "RTM_DELROUTE"]
    assert len(req) == 1, run.stdout_lines
    assert req[0]["netns"] == netns.inode and req[0]["protocol"] == "route"
    assert req[0]["request"]["attrs"]["RTA_OIF"] == 0
    rep = [r for r in mine if r["direction"] == "reply" and r["seq"] == req[0]["seq"]]
    assert [r["error"] for r in rep] == ["ESRCH"], rep
    assert rep[0]["latency_us"] is not None and rep[0]["latency_us"] > 0
    assert run.lost() == 0


def test_route_add_with_bad_prefix_carries_kernel_extack(nlbpf, netns):
    run = nlbpf("errors", "--json")
    proc = subprocess.Popen(["ip", "-n", netns.name, "route", "add", "10.9.0.1/24", "dev", "lo"],
                            stderr=subprocess.PIPE, text=True)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0
    run.stop()
    recs = [r for r in by_pid(run.records(), proc.pid) if r["type"] == "RTM_NEWROUTE"]
    assert len(recs) == 1, run.stdout_lines
    assert recs[0]["error"] == "EINVAL"
    assert recs[0]["extack"] == "Invalid prefix for given prefix length"


@pytest.mark.parametrize("reader", ["auto", "bcc"])
def test_ip_batch_every_request_and_ack_seen_with_nothing_lost(nlbpf, netns, reader):
    """auto: the ring's pages read directly (ringbuf.py); bcc: its per-record callback."""
    if reader == "bcc":
        once_in_the_vm("reading the ring through bcc's callback")
    n = 400
    lines = [f"route add 10.{i // 250}.{i % 250}.0/24 dev lo" for i in range(n // 2)]
    lines += [f"route del 10.{i // 250}.{i % 250}.0/24 dev lo" for i in range(n // 2)]
    run = nlbpf("trace", "--json", "--ring-reader", reader)
    pid = netns.batch(lines)
    run.stop(settle=1.0)
    recs = by_pid(run.records(), pid)
    route_requests = [r for r in recs if r["direction"] == "request"
                      and r["type"] in ("RTM_NEWROUTE", "RTM_DELROUTE")]
    assert len(route_requests) == n
    seqs = {r["seq"] for r in route_requests}
    acks = [r for r in recs if r["direction"] == "reply" and r["type"] == "NLMSG_ERROR"
            and r["errno"] is None and r["seq"] in seqs]
    assert len(acks) == n
    assert all(a["latency_us"] is not None for a in acks)
    assert run.lost() == 0


def test_dump_of_20k_routes_is_reported_slow_with_parts_and_bytes(nlbpf, netns, nlclient):
    n = 20000
    netns.batch([f"route add 10.{i // 200}.{i % 200}.0/24 dev lo" for i in range(n)])
    run = nlbpf("slow", "--threshold", "1ms", "--json")
    result = nlclient(netns, "dumproutes", 1)
    run.stop()
    recs = [r for r in by_pid(run.records(), result["pid"])
            if r["type"] == "RTM_GETROUTE" and not r["after_slow"]]
    assert len(recs) == 1, run.stdout_lines
    rec = recs[0]
    assert rec["dump"]["parts"] == result["parts"][0] >= n
    assert rec["dump"]["bytes"] > n * 40
    assert rec["dump"]["intr"] is False
    assert rec["latency_us"] >= 1000
    assert rec["lock_wait_us"] >= 0 and rec["work_us"] > 0
    assert run.lost() == 0


@CALL_STATES
def test_top_counts_the_requests_a_process_really_made(nlbpf, netns, nlclient, call_state):
    run = nlbpf("top", "--json", "-i", "1", "--call-state", call_state)
    result = nlclient(netns, "getlink", 250)
    time.sleep(1.5)
    run.stop(settle=0)
    intervals = run.records()
    assert intervals and all("rows" in i and "lost" in i for i in intervals)
    rows = [r for i in intervals for r in i["rows"] if r["pid"] == result["pid"]]
    seen = [(i["interval_s"], i["lost"], [(r["pid"], r["comm"], r["requests"], r["msgs_out"],
                                           r["msgs_in"]) for r in i["rows"]])
            for i in intervals]
    assert sum(r["requests"] for r in rows) == 250, (result, seen, run.stderr_lines[-5:])
    assert sum(r["msgs_out"] for r in rows) == 250
    assert sum(r["msgs_in"] for r in rows) == 500        # a reply and an ack each
    assert sum(r["errors"] for r in rows) == 0
    assert any(t["type"] == "RTM_GETLINK" for r in rows for t in r["top_types"])
    assert sum(r["bytes_out"] for r in rows) == 250 * 32     # from the ACKs' echoes too
    if layer_of(run) == "sock":
        assert all(r["p50_us"] is None for r in rows)       # no request starts there
    else:
        assert all(r["p50_us"] is not None for r in rows)
    assert sum(i["lost"] for i in intervals) == 0


def test_top_counts_route_changes_not_the_notifications_they_cause(nlbpf, netns):
    """Each route add/del sends a notification nobody here listens to. On the kernel
    layer it is seen where it is sent, in ip's own context; it is still not a message
    ip received (found by comparing the hook layers in the VM)."""
    n = 200
    lines = [f"route add blackhole 10.6.{i // 250}.{i % 250}/32" for i in range(n)]
    lines += [line.replace("add", "del") for line in lines]
    run = nlbpf("top", "--json", "-i", "1")
    pid = netns.batch(lines)
    time.sleep(1.5)
    run.stop(settle=0)
    rows = [r for i in run.records() for r in i["rows"] if r["pid"] == pid]
    assert sum(r["requests"] for r in rows) == 2 * n, rows
    assert sum(r["msgs_out"] for r in rows) == 2 * n
    assert sum(r["msgs_in"] for r in rows) == 2 * n          # the acks, nothing more
    assert sum(r["errors"] for r in rows) == 0


def test_top_max_is_the_intervals_like_the_other_columns(nlbpf, netns, nlclient):
    """A slow dump, then fast requests from the same process seconds later: the later
    intervals' MAX is theirs, not the dump's (it was the largest since the start), and
    no interval's P99 is above its MAX. The kernel layer runs the same C (message.bpf.h)
    as the syscall layer; its attach costs ~30 s under the VM's emulation."""
    args = skip_if_kernel_layer_asked("the same code as the syscall layer")
    netns.batch([f"route add blackhole 10.7.{i // 250}.{i % 250}/32" for i in range(5000)])
    run = nlbpf("top", "--json", "-i", "1", *args)
    result = nlclient(netns, "dumpthengetlink", 2.5, 50)
    time.sleep(1.5)
    run.stop(settle=0)
    rows = [r for i in run.records() for r in i["rows"] if r["pid"] == result["pid"]]
    slow = [r for r in rows if r["dumps"]]
    fast = [r for r in rows if r["requests"] and not r["dumps"]]
    assert len(slow) == 1 and sum(r["requests"] for r in fast) == 50, rows
    assert all(r["max_us"] < slow[0]["max_us"] for r in fast), (slow, fast)
    assert all(r["p99_us"] <= r["max_us"] for r in rows if r["requests"]), rows


def test_top_counts_every_part_of_a_big_dump(nlbpf, netns, nlclient):
    """A 32 KB dump chunk of small routes holds ~600 messages: every one counts."""
    n = 5000
    netns.batch([f"route add blackhole 10.9.{i // 250}.{i % 250}/32" for i in range(n)])
    run = nlbpf("top", "--json", "-i", "1")
    result = nlclient(netns, "dumproutes", 1)
    time.sleep(1.5)
    run.stop(settle=0)
    rows = [r for i in run.records() for r in i["rows"] if r["pid"] == result["pid"]]
    assert sum(r["dumps"] for r in rows) == 1
    assert sum(r["msgs_in"] for r in rows) == result["parts"][0] + 1 >= n + 1   # and NLMSG_DONE
    assert "partly walked" not in "".join(run.stderr_lines)


def test_trace_shows_every_part_of_a_big_dump_filtered_and_cut(nlbpf, netns, nlclient):
    """Dump parts reach trace in bulk (EV_CHUNK, on both layers): each still comes out
    as its own record, cut at --snaplen, paired with its request, and --type keeps
    only the dump's request, parts and DONE (not the getlink traffic beside it)."""
    n = 3000
    netns.batch([f"route add blackhole 10.8.{i // 250}.{i % 250}/32 table {100 + i % 3}"
                 for i in range(n)])
    run = nlbpf("trace", "--json", "--type", "RTM_GETROUTE", "--snaplen", "40")
    layer = layer_of(run)
    dump = nlclient(netns, "dumproutes", 2)
    other = nlclient(netns, "getlink", 20)
    time.sleep(0.5)
    run.stop()
    recs = by_pid(run.records(), dump["pid"])
    parts = [r for r in recs if r["type"] == "RTM_NEWROUTE"]
    done = [r for r in recs if r["type"] == "NLMSG_DONE"]
    assert len(parts) == sum(dump["parts"]) >= 2 * n, (len(parts), dump)
    assert len(done) == 2 and [d["dump"]["parts"] for d in done] == dump["parts"]
    assert all(r["truncated"] and r["direction"] == "reply" for r in parts)
    assert {r["seq"] for r in parts} == {1, 2}
    # the syscall layer sees them in recvfrom; the kernel layer as they are queued
    call = "recvfrom" if layer == "syscall" else "kernel"
    assert all(r["syscall"]["name"] == call and r["syscall"]["ret"] > 0 for r in parts)
    assert "partly walked" not in "".join(run.stderr_lines)
    assert not by_pid(run.records(), other["pid"])
    assert run.lost() == 0


def test_dump_parts_straddling_iovecs_are_all_traced(nlbpf, netns, nlclient):
    """recvmsg into odd-sized iovecs: parts inside one go in bulk, parts cut by an
    iovec's end take the full path (flagged split); none is lost or doubled."""
    why = "iovecs are the syscall layer's view (the kernel layer sees skbs)"
    layer = skip_if_kernel_layer_asked(why)
    n = 2000
    netns.batch([f"route add blackhole 10.7.{i // 250}.{i % 250}/32" for i in range(n)])
    run = nlbpf("trace", "--json", *layer)
    syscall_layer_only(run, why)
    dump = nlclient(netns, "dumpiov", "1000,3001,777,60000")
    time.sleep(0.5)
    run.stop()
    recs = by_pid(run.records(), dump["pid"])
    parts = [r for r in recs if r["type"] == "RTM_NEWROUTE"]
    done = [r for r in recs if r["type"] == "NLMSG_DONE"]
    assert len(parts) == dump["parts"][0] >= n
    assert len(done) == 1 and done[0]["dump"]["parts"] == dump["parts"][0]
    assert all(r["syscall"]["name"] == "recvmsg" for r in parts)
    # those that straddle an iovec's end are gathered whole from both, as the rest
    assert not [r for r in parts if r["truncated"]]
    assert all(r["message"]["attrs"] and not r["malformed"] for r in parts)
    assert run.lost() == 0


@pytest.mark.parametrize("command", ["errors", "slow", "top"])
def test_pipelined_batch_of_failing_deletes_pairs_every_request(nlbpf, netns, nlclient, command):
    """200 RTM_DELROUTE in one sendmsg, replies read after: more requests wait at once
    than a socket's slots in the hot pending table, so most go through the LRU and
    back. Every one must still pair with its ESRCH, with its own request."""
    why = "the kernel layer pairs the first 16 requests of one skb (KWALK_FULL)"
    layer = skip_if_kernel_layer_asked(why)
    n = 200
    argv = {"errors": ["errors"], "slow": ["slow", "--threshold", "1us"],
            "top": ["top", "-i", "1"]}[command]
    run = nlbpf(*argv, "--json", *layer)
    syscall_layer_only(run, why)
    client = nlclient(netns, "batchdel", str(n))
    time.sleep(1.2)
    run.stop()
    assert client["errors"] == n
    if command == "top":
        rows = [r for i in run.records() for r in i["rows"] if r["pid"] == client["pid"]]
        assert sum(r["requests"] for r in rows) == n
        assert sum(r["errors"] for r in rows) == n
    else:
        recs = [r for r in by_pid(run.records(), client["pid"]) if r["type"] == "RTM_DELROUTE"]
        assert sorted(r["seq"] for r in recs) == list(range(1, n + 1))
        assert all(r["error"] == "ESRCH" for r in recs), {r["error"] for r in recs}
        # each with its own request, held in the kernel until its reply came
        assert all(f"dst 10.99.{r['seq'] % 256}.0/24" in r["summary"] for r in recs)
    assert run.lost() == 0


@pytest.mark.parametrize("command", ["slow", "top"])
def test_every_part_of_a_dump_read_into_odd_iovecs_is_counted(nlbpf, netns, nlclient, command):
    """slow and top count a dump's parts header by header once the walk meets one,
    segment by segment: a part cut by an iovec's end is skipped over in the next
    one, and the count comes out the same as the client's."""
    why = "iovecs are the syscall layer's view (the kernel layer sees skbs)"
    layer = skip_if_kernel_layer_asked(why)
    n = 2000
    netns.batch([f"route add blackhole 10.8.{i // 250}.{i % 250}/32" for i in range(n)])
    argv = ["slow", "--threshold", "1us"] if command == "slow" else ["top", "-i", "1"]
    run = nlbpf(*argv, "--json", *layer)
    syscall_layer_only(run, why)
    dump = nlclient(netns, "dumpiov", "1000,3001,777,60000")
    time.sleep(1.2)
    run.stop()
    if command == "slow":
        recs = [r for r in by_pid(run.records(), dump["pid"]) if r["type"] == "RTM_GETROUTE"]
        assert len(recs) == 1, run.stdout_lines
        assert recs[0]["dump"]["parts"] == dump["parts"][0] >= n
    else:
        rows = [r for i in run.records() for r in i["rows"] if r["pid"] == dump["pid"]]
        assert sum(r["msgs_in"] for r in rows) == dump["parts"][0] + 1 >= n + 1  # and DONE
    assert run.lost() == 0 and "more messages than the probe walks" not in run.stderr


@pytest.mark.parametrize("argv", [["trace", "--json"], ["errors", "--json"],
                                  ["slow", "--threshold", "1us", "--json"],
                                  ["top", "--json", "-i", "1"]], ids=lambda a: a[0])
def test_every_command_runs_at_the_smallest_snaplen(nlbpf, netns, nlclient, argv):
    """--snaplen 16 keeps the header only: every probe must still load (extack text and
    the reply status are read into the same buffer) and account for the traffic."""
    run = nlbpf(*argv, "--snaplen", "16")
    client = nlclient(netns, "getlink", 5)
    time.sleep(1.2)
    run.stop()
    assert run.lost() == 0
    recs = run.records()
    if argv[0] == "trace":
        mine = by_pid(recs, client["pid"])
        assert [r["type"] for r in mine].count("RTM_NEWLINK") == 5
        assert all(r["truncated"] for r in mine if r["type"] == "RTM_NEWLINK")
        assert [r["error"] for r in mine if r["type"] == "NLMSG_ERROR"] == [None] * 5
    elif argv[0] == "top":
        rows = [r for i in recs for r in i["rows"] if r["pid"] == client["pid"]]
        assert sum(r["requests"] for r in rows) == 5 and sum(r["errors"] for r in rows) == 0
    elif argv[0] == "slow":
        assert len(by_pid(recs, client["pid"])) == 5        # everything takes over 1 us
    else:
        assert not by_pid(recs, client["pid"])


def test_interrupted_dump_is_flagged(nlbpf, netns, nlclient):
    netns.batch([f"link add br{i} type bridge" for i in range(300)])
    run = nlbpf("errors", "--json")
    churn = netns.popen(["sh", "-c", "while true; do ip link add brx type bridge; "
                         "ip link del brx; done"])
    try:
        result = nlclient(netns, "dumplinks", 4)
    finally:
        churn.kill()
        churn.wait()
    run.stop()
    assert result["interrupted_dumps"] > 0, "the workload did not provoke NLM_F_DUMP_INTR"
    recs = [r for r in by_pid(run.records(), result["pid"]) if r["type"] == "RTM_GETLINK"]
    assert len(recs) == result["interrupted_dumps"]
    assert all(r["dump"]["intr"] for r in recs)
    assert all(r["errno"] is None for r in recs)
    assert all("DUMP_INTR" in r["summary"] for r in recs)
