"""The socket-tracepoint layer (--hooks sock): what errors, top and slow show from
sock:sk_data_ready, sock:sock_send_length and a task iterator, for real.

It needs Linux 6.7+ (this host has it). Where it cannot load (the VM's Debian
6.1) these tests skip and say why; the VM runs them for the other layers' sake
with NLBPF_TEST_HOOKS set, and then they skip too (they are about this layer).
"""
import json
import subprocess
import sys
import time

import pytest

from tests.helpers.live import NLCLIENT, Run, bpftool_json, program_ids, require_sock_layer

TIMEOUT = 300


@pytest.fixture(scope="module")
def sock_layer():
    require_sock_layer()
    return True


def start(*args):
    run = Run(list(args) + ["--hooks", "sock"])
    assert run.stderr.startswith("Hooks: sock"), run.stderr
    return run


def client(ns, *args):
    proc = ns.popen([sys.executable, str(NLCLIENT), *map(str, args)])
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def mine(run, pid, type_=None):
    return [r for r in run.records() if r["pid"] == pid and (type_ is None or r["type"] == type_)]


# ------------------------------------------------------------------ errors

def test_errors_rebuild_the_failed_request_from_its_echo(sock_layer, netns):
    run = start("errors", "--json")
    assert "Note: no latency on this layer" in run.stderr
    proc = subprocess.run(["ip", "-n", netns.name, "route", "del", "198.51.100.0/24", "via",
                           "127.0.0.1"], capture_output=True, text=True, timeout=TIMEOUT)
    assert "No such process" in proc.stderr
    run.stop()
    recs = [r for r in run.records() if r["comm"] == "ip" and r["type"] == "RTM_DELROUTE"]
    assert len(recs) == 1, run.stdout_lines
    rec = recs[0]
    assert rec["error"] == "ESRCH" and rec["netns"] == netns.inode
    assert rec["request"]["attrs"] == {"RTA_DST": "198.51.100.0", "RTA_GATEWAY": "127.0.0.1"}
    assert rec["flags"] == ["NLM_F_REQUEST", "NLM_F_ACK"] and not rec["truncated"]
    assert rec["latency_us"] is None and rec["summary"].endswith("(No such process)")
    assert rec["reply"]["type_name"] == "NLMSG_ERROR"
    assert run.lost() == 0


def test_errors_of_a_cap_ack_socket_keep_the_requests_header(sock_layer, netns):
    """NETLINK_CAP_ACK: the error echoes only the request's header. What failed is
    still said (type, flags, seq, errno); the payload is marked as not there."""
    run = start("errors", "--json")
    got = client(netns, "capdel")
    run.stop()
    assert got["errno"] == 3
    recs = mine(run, got["pid"], "RTM_DELROUTE")
    assert len(recs) == 1, run.stdout_lines
    rec = recs[0]
    assert rec["error"] == "ESRCH" and rec["seq"] == 1
    assert rec["truncated"] is True and rec["request"]["length"] == got["length"]
    assert "[truncated]" in rec["summary"] and rec["request"]["attrs"] == {}


def test_error_text_of_a_socket_that_did_not_ask_for_it(sock_layer, netns):
    """No NETLINK_EXT_ACK: the reply carries no text; netlink:netlink_extack, raised
    in the requester's thread just before, gives it."""
    run = start("errors", "--json")
    got = client(netns, "badprefix")
    run.stop()
    assert got["errno"] == 22
    recs = mine(run, got["pid"], "RTM_NEWROUTE")
    assert len(recs) == 1, run.stdout_lines
    assert recs[0]["extack"] == "Invalid prefix for given prefix length"
    assert recs[0]["request"]["attrs"] == {"RTA_DST": "10.9.0.1", "RTA_OIF": 1}


def test_an_error_nobody_reads_is_reported(sock_layer, netns):
    """A delete without NLM_F_ACK whose sender exits at once: the kernel still queues
    the error, and this layer sees it queued."""
    import socket
    import struct
    rtm = struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 0, 0, 0, 0)
    payload = rtm + struct.pack("=HH", 8, 1) + socket.inet_aton("198.51.100.0")
    msg = struct.pack("=IHHII", 16 + len(payload), 25, 0x1, 4242, 0) + payload
    run = start("errors", "--json")
    got = client(netns, "raw", msg.hex())
    run.stop()
    recs = mine(run, got["pid"], "RTM_DELROUTE")
    assert len(recs) == 1 and recs[0]["seq"] == 4242 and recs[0]["error"] == "ESRCH", \
        run.stdout_lines


def test_pipelined_failing_deletes_each_keep_their_own_request(sock_layer, netns):
    """200 deletes in one sendmsg: each error echoes its own request."""
    n = 200
    run = start("errors", "--json")
    got = client(netns, "batchdel", n)
    run.stop()
    recs = mine(run, got["pid"], "RTM_DELROUTE")
    assert sorted(r["seq"] for r in recs) == list(range(1, n + 1))
    assert all(f"dst 10.99.{r['seq'] % 256}.0/24" in r["summary"] for r in recs)
    assert run.lost() == 0


def test_a_socket_overrun_is_reported_with_what_it_dropped(sock_layer, netns):
    """A route listener with the smallest receive buffer reads nothing while 200 routes
    come and go: the kernel drops what does not fit (its reader gets ENOBUFS). The
    drop counter says how many, within a second, even if it never reads."""
    run = start("errors", "--json")
    listener = netns.popen([sys.executable, str(NLCLIENT), "overrun", "3"])
    assert json.loads(listener.stdout.readline())["listening"]
    netns.batch([f"route add blackhole 10.77.0.{i}/32" for i in range(200)])
    out, _ = listener.communicate(timeout=TIMEOUT)
    assert json.loads(out.strip().splitlines()[-1])["enobufs"]
    time.sleep(1.5)
    run.stop()
    recs = [r for r in run.records() if r["pid"] == listener.pid]
    assert len(recs) >= 1 and all(r["error"] == "ENOBUFS" for r in recs), run.stdout_lines
    assert 0 < sum(r["dropped"] for r in recs) <= 200
    assert recs[0]["direction"] == "syscall" and recs[0]["netns"] == netns.inode
    assert "dropped" in recs[0]["summary"] and "overrun" in recs[0]["summary"]


# --------------------------------------------------------------------- top

def test_top_counts_the_requests_the_kernel_answered(sock_layer, netns):
    """With an ACK (counted once, not once for the reply and once for the ACK) and
    without one (the reply answers; the request is read from the sender's buffer)."""
    run = start("top", "--json", "-i", "1")
    acked = client(netns, "getlink", 300)
    bare = client(netns, "getlinknoack", 200)
    dels = client(netns, "batchdel", 50)
    time.sleep(1.5)
    run.stop(settle=0)
    assert "Note: no latency columns on this layer" in run.stderr

    def total(pid):
        rows = [r for i in run.records() for r in i["rows"] if r["pid"] == pid]
        out = {k: sum(r[k] for r in rows) for k in ("requests", "errors", "msgs_in",
                                                       "msgs_out", "bytes_out", "dumps")}
        out["types"] = {t["type"]: 0 for r in rows for t in r["top_types"]}
        for r in rows:
            for t in r["top_types"]:
                out["types"][t["type"]] += t["count"]
        return out
    a, b, d = total(acked["pid"]), total(bare["pid"]), total(dels["pid"])
    assert a == {"requests": 300, "errors": 0, "msgs_in": 600, "msgs_out": 300,
                 "bytes_out": 300 * 32, "dumps": 0, "types": {"RTM_GETLINK": 300}}, a
    assert b == {"requests": 200, "errors": 0, "msgs_in": 200, "msgs_out": 200,
                 "bytes_out": 200 * 32, "dumps": 0, "types": {"RTM_GETLINK": 200}}, b
    assert d["requests"] == 50 and d["errors"] == 50 and d["types"] == {"RTM_DELROUTE": 50}, d
    assert sum(i["lost"] for i in run.records()) == 0


def test_top_counts_a_dump_once_with_all_its_parts(sock_layer, netns):
    n = 3000
    netns.batch([f"route add blackhole 10.5.{i // 250}.{i % 250}/32" for i in range(n)])
    run = start("top", "--json", "-i", "1")
    got = client(netns, "dumproutes", 2)
    time.sleep(1.5)
    run.stop(settle=0)
    rows = [r for i in run.records() for r in i["rows"] if r["pid"] == got["pid"]]
    assert sum(r["requests"] for r in rows) == 2 and sum(r["dumps"] for r in rows) == 2
    assert sum(r["msgs_in"] for r in rows) == sum(got["parts"]) + 2     # and two DONEs
    assert {t["type"] for r in rows for t in r["top_types"]} == {"RTM_GETROUTE"}


# -------------------------------------------------------------------- slow

def test_slow_names_the_rtnl_holder_and_reports_both_while_they_run(sock_layer, netns):
    """One request holds rtnl for seconds (400 bridges deleted at once); another
    waits for it. Both are reported while they run, then when they end: the waiter
    with its lock wait and the holder's name, the holder with no lock wait."""
    netns.batch([f"link add nlb{i} group 7 type bridge" for i in range(400)])
    run = start("slow", "--threshold", "200ms", "--json")
    assert "a call's start is known within 20 ms" in run.stderr
    holder = subprocess.Popen(["ip", "-n", netns.name, "link", "del", "group", "7"])
    time.sleep(0.1)
    waiter = subprocess.Popen(["ip", "-n", netns.name, "link", "set", "lo", "mtu", "65536"])
    waiter.wait(TIMEOUT)
    holder.wait(TIMEOUT)
    run.stop()
    recs = run.records()
    running = {r["pid"]: r for r in recs if r["direction"] == "in_progress"}
    done = {r["pid"]: r for r in recs if r["direction"] == "request" and not r["after_slow"]}
    assert holder.pid in running and holder.pid in done, recs
    h = done[holder.pid]
    assert h["type"] == "RTM_DELLINK" and h["error"] is None
    assert h["latency_min_us"] <= h["latency_us"] <= h["latency_min_us"] + 25_000
    assert h["latency_us"] >= 200_000 and h["lock_wait_us"] < 0.1 * h["latency_us"]
    if waiter.pid not in done:
        pytest.skip(f"the waiter did not overlap the holder's rtnl hold this time: {recs}")
    w = done[waiter.pid]
    assert w["lock_wait_us"] > 0.5 * w["latency_min_us"], w
    assert w["holder"] == {"pid": holder.pid, "comm": "ip", "work": None}, w
    assert "mutex held by ip" in w["summary"]
    assert any(c["pid"] == holder.pid for c in w["concurrent"]), w
    r = running[waiter.pid]
    assert r["running_min_us"] >= 200_000 and r["holder"] == {"pid": holder.pid, "comm": "ip",
                                                  "work": None}
    assert "so far" in r["summary"]


def test_slow_is_quiet_for_fast_requests(sock_layer, netns):
    run = start("slow", "--threshold", "200ms", "--json")
    client(netns, "getlink", 2000)
    run.stop()
    assert run.records() == [] and run.lost() == 0


def test_small_thresholds_leave_the_socket_layer(sock_layer, netns):
    """Looking at threads every 10 ms cannot time a 1 ms request: auto takes a layer
    that sees each request's start."""
    run = Run(["slow", "--threshold", "1ms", "--json"])
    assert not run.stderr.startswith("Hooks: sock"), run.stderr
    run.stop()


# -------------------------------------------------------------- clean exit

@pytest.mark.parametrize("command", [["errors"], ["top"], ["slow", "--threshold", "200ms"]])
def test_nothing_of_the_layer_stays_after_exit(sock_layer, netns, command):
    """Its BTF programs are loaded outside bcc (nlbpf/capture/btfprog.py): they, their
    links and the task iterator go when nlbpf does, as bcc's do."""
    run = start(*command, "--json")
    progs, maps = program_ids(run.proc.pid)
    names = {p["name"] for p in bpftool_json("prog", "show") if p["id"] in progs}
    want = {"errors": {"sock_ready"}, "top": {"sock_ready"}, "slow": {"sock_sent", "slow_poll"}}
    assert want[command[0]] <= names, names
    client(netns, "getlink", 20)
    run.stop()
    assert run.proc.returncode == 0, run.stderr
    for _ in range(50):
        live = {p["id"] for p in bpftool_json("prog", "show")}
        if not progs & live:
            break
        time.sleep(0.2)
    assert not progs & live, sorted(progs & live)
    assert not [ln for ln in bpftool_json("link", "show") if ln.get("prog_id") in progs]
