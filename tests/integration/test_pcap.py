"""record and read for real: Wireshark's view of the file, offline views equal to live
ones, and nlmon + tcpdump captures of the same traffic."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.live import nlbpf_cmd

from tests.helpers.nlfixtures import answered_requests

TIMEOUT = 120


def setup_link(netns):
    """A veth pair with an address, so that routes via 192.0.2.2 can be added."""
    netns.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    netns.ip("addr", "add", "192.0.2.1/24", "dev", "v0")
    netns.ip("link", "set", "v0", "up")
    netns.ip("link", "set", "v1", "up")


def route_workload(netns):
    """add, get, dump, del, a del that fails (ESRCH) and an add that fails (EINVAL + extack)."""
    netns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.2")
    netns.ip("route", "get", "198.51.100.7")
    netns.ip("route", "show")
    netns.ip("route", "del", "198.51.100.0/24", "via", "192.0.2.2")
    assert netns.ip("route", "del", "198.51.100.0/24", check=False).returncode != 0
    assert netns.ip("route", "add", "10.9.0.1/24", "dev", "lo", check=False).returncode != 0


@pytest.fixture
def workdir():
    # readable by nobody, unlike pytest's tmp_path
    d = Path(tempfile.mkdtemp(prefix="nlbpf-pcap-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def read(path, *args, user=None):
    out = subprocess.run(nlbpf_cmd() + ["read", str(path), "--json", *args], capture_output=True,
                         text=True, timeout=TIMEOUT, user=user, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()], out.stderr


def first(field):
    """tshark's first value of a field (a frame may hold several headers)."""
    return field.split(",")[0] if field else ""


def record_route_workload(nlbpf, netns, path):
    """`nlbpf record` of route_workload into path, readable by anyone."""
    setup_link(netns)
    run = nlbpf("record", "-w", str(path), "--netns", netns.name)
    route_workload(netns)
    run.stop()
    assert run.proc.returncode == 0, run.stderr
    assert run.lost() == 0
    path.chmod(0o644)
    return path

@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark (Wireshark) is not installed")
def test_wireshark_dissects_what_nlbpf_recorded(nlbpf, netns, workdir):
    path = record_route_workload(nlbpf, netns, workdir / "route.pcapng")

    recs, _ = read(path)
    ours = [r for r in recs if r["comm"] == "ip"]
    assert {"RTM_NEWROUTE", "RTM_DELROUTE", "RTM_GETROUTE"} <= {r["type"] for r in ours}

    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
                          "-e", "frame.comment", "-e", "netlink.family",
                          "-e", "netlink-route.nltype", "-e", "netlink.hdr_type",
                          "-e", "netlink.hdr_flags", "-e", "netlink.hdr_seq",
                          "-e", "netlink-route.rt_family", "-e", "netlink-route.rt_dst_len",
                          "-e", "frame.packet_flags_direction"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    frames = [line.split("|") for line in out.stdout.splitlines()]
    # one frame per message, in the order nlbpf read prints them
    msgs = [f for f in frames if f[0].startswith("pid=")]
    assert len(msgs) == len(recs)
    seen_route = 0
    for f, rec in zip(msgs, recs):
        comment, family, rtype, htype, flags, seq, rt_family, dst_len, direction = f
        meta = dict(kv.split("=", 1) for kv in re.findall(r'\w+=(?:"[^"]*"|\S+)', comment))
        assert int(meta["pid"]) == rec["pid"] and meta["comm"].strip('"') == rec["comm"]
        assert int(meta["netns"]) == rec["netns"] == netns.inode
        assert int(family, 0) == 0                                   # NETLINK_ROUTE
        message = rec["message"]
        if message.get("type") is None or message.get("length", 0) < 16:
            continue                                                 # malformed bytes
        wire_type = int(first(rtype) or first(htype), 0)
        assert wire_type == message["type"], (f, rec["summary"])
        assert int(first(flags), 0) == message["flags"]
        assert int(first(seq)) == rec["seq"]
        assert int(direction, 0) == (2 if rec["direction"] == "request" else 1)
        if rec["direction"] == "request" and rec["type"] in ("RTM_NEWROUTE", "RTM_DELROUTE"):
            assert int(rt_family) == 2 and dst_len and int(dst_len) == 24   # netlink-route
            seen_route += 1
    assert seen_route >= 3
    # failed calls and extack texts: comments on NLMSG_NOOP frames
    assert any(f[0].startswith("event=extack") and "Invalid prefix" in f[0] for f in frames)


def strip(rec):
    """A record minus what two probe sets measure differently: times and durations
    (ts, any *_us at any depth, "meanwhile" lists and lock holders)."""
    if isinstance(rec, list):
        return [strip(v) for v in rec]
    if not isinstance(rec, dict):
        return rec
    out = {k: strip(v) for k, v in rec.items()
           if k not in ("ts", "concurrent", "holder") and not k.endswith("_us")}
    if isinstance(out.get("summary"), str):
        # timings in the text line: [5.51ms], 161us, [1.21ms, 2 parts 120B]
        out["summary"] = re.sub(r"\d+(\.\d+)?(us|ms|s)\b", "T", out["summary"])
        out["summary"] = out["summary"].split(" — lock wait")[0]
        # a request's latency ends the line, where the layer measures one (the socket
        # layer, live errors' default here, does not: the recording's syscall layer does)
        out["summary"] = re.sub(r" T$", "", out["summary"])
    return out


def key(rec):
    return json.dumps(strip(rec), sort_keys=True)


def ident(rec):
    return (rec["pid"], rec["seq"], rec["type"], rec["portid"])


def test_read_gives_the_records_live_views_gave(nlbpf, netns, nlclient, workdir):
    setup_link(netns)
    # dumps of many routes are the slow requests (fewer under the VM's emulation)
    n = 1500 if os.environ.get("NLBPF_VM") else 5000
    netns.batch([f"route add 10.{i // 200}.{i % 200}.0/24 dev lo" for i in range(n)])
    path = workdir / "all.pcapng"
    ns = ["--netns", netns.name]
    threshold_us = 1000
    runs = {
        "record": nlbpf("record", "-w", str(path), *ns),
        "trace": nlbpf("trace", "--json", *ns),
        "errors": nlbpf("errors", "--json", *ns),
        "slow": nlbpf("slow", "--json", "--threshold", f"{threshold_us}us", *ns),
    }
    route_workload(netns)
    dump = nlclient(netns, "dumproutes", 2)
    for run in runs.values():
        run.stop(timeout=600)
        assert run.proc.returncode == 0, run.stderr
        assert run.lost() == 0

    # the same records, bar timing (two sets of probes time the same calls)
    for view in ("trace", "errors"):
        offline, _ = read(path, "--view", view)
        live = runs[view].records()
        assert live, view
        assert sorted(map(key, offline)) == sorted(map(key, live)), view
        for a, b in zip(sorted(offline, key=key), sorted(live, key=key)):
            assert abs(a["ts"] - b["ts"]) < 0.01
            if a.get("latency_us") is not None and b.get("latency_us") is not None:
                assert abs(a["latency_us"] - b["latency_us"]) <= max(200, 0.2 * b["latency_us"])

    errs, _ = read(path, "--view", "errors")
    assert {r["error"] for r in errs} >= {"ESRCH", "EINVAL"}
    assert any(r["extack"] == "Invalid prefix for given prefix length" for r in errs)

    # slow: a request near the threshold may fall on either side of it in two
    # measurements; one well above it must be in both, and the same
    offline, _ = read(path, "--view", "slow", "--threshold", f"{threshold_us}us")
    live = runs["slow"].records()
    # (the requests shown after a slow one follow whichever side of the threshold it fell)
    off = {ident(r): r for r in offline if not r["after_slow"]}
    on = {ident(r): r for r in live if not r["after_slow"]}
    clear = {k for k, r in {**off, **on}.items() if r["latency_us"] >= 3 * threshold_us}
    assert clear <= set(off) and clear <= set(on)
    for k in set(off) & set(on):
        assert strip(off[k]) == strip(on[k])
    dumps = [r for r in offline if r["pid"] == dump["pid"] and not r["after_slow"]]
    assert [r["dump"]["parts"] for r in dumps] == dump["parts"]
    assert {ident(r) for r in dumps} <= set(on)


def test_offline_top_adds_up_to_the_live_intervals(nlbpf, netns, nlclient, workdir):
    # no big dumps here: live top walks fewer messages per call than trace does
    setup_link(netns)
    path = workdir / "top.pcapng"
    ns = ["--netns", netns.name]
    record = nlbpf("record", "-w", str(path), *ns)
    top = nlbpf("top", "--json", "-i", "1", *ns)
    route_workload(netns)
    got = nlclient(netns, "getlink", 200)
    time.sleep(1.5)
    for run in (record, top):
        run.stop(settle=0)
        assert run.proc.returncode == 0, run.stderr

    offline, _ = read(path, "--view", "top")
    assert len(offline) == 1                         # one interval for the whole file
    rows = {r["pid"]: r for r in offline[0]["rows"]}
    live = [row for i in top.records() for row in i["rows"]]
    counters = ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out", "bytes_in",
                "bytes_out")
    pids = {row["pid"] for row in live}
    assert got["pid"] in pids and set(rows) == pids
    for pid in pids:
        mine = [r for r in live if r["pid"] == pid]
        want = {c: sum(r[c] for r in mine) for c in counters}
        assert {c: rows[pid][c] for c in counters} == want, pid
        assert rows[pid]["comm"] == mine[0]["comm"]
        assert set(rows[pid]) >= set(mine[0])        # the same row keys
        assert rows[pid]["top_types"][0]["type"] in {t["type"] for r in mine for t in r["top_types"]}
    assert rows[got["pid"]]["requests"] == 200 and rows[got["pid"]]["msgs_in"] == 400


def test_reading_needs_no_root_and_loads_no_bcc(nlbpf, netns, workdir):
    path = record_route_workload(nlbpf, netns, workdir / "r.pcapng")
    probe = ("import sys\nfrom nlbpf import cli\ntry:\n    cli.main(sys.argv[1:])\n"
             "except SystemExit as e:\n    print('exit', e.code, 'bcc' in sys.modules, file=sys.stderr)\n")
    for view in ("trace", "errors", "slow", "top"):
        out = subprocess.run([sys.executable, "-c", probe, "read", str(path), "--view", view,
                              "--json", "--threshold", "1us"], capture_output=True, text=True,
                             user="nobody", cwd="/", timeout=TIMEOUT,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert "exit 0 False" in out.stderr, out.stderr
        assert out.stdout.strip(), view


def pairs(path):
    """Answered requests of `ip` ("?": an nlmon capture has no process names)."""
    return answered_requests(path, comms=("ip", "?"))


def test_nlmon_capture_pairs_like_nlbpfs_own(nlbpf, netns, workdir):
    """Where the kernel has nlmon (the VM's stock kernel), capture the same traffic both ways."""
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    subprocess.run(["modprobe", "nlmon"], capture_output=True)
    made = netns.ip("link", "add", "nlmon0", "type", "nlmon", check=False)
    if made.returncode:
        pytest.skip(f"no nlmon here (`ip link add nlmon0 type nlmon`: {made.stderr.strip()}); "
                    f"tests/unit/test_files.py compares the VM-made fixture instead")
    netns.ip("link", "set", "nlmon0", "up")
    setup_link(netns)
    own, theirs = workdir / "own.pcapng", workdir / "nlmon.pcap"
    run = nlbpf("record", "-w", str(own), "--netns", netns.name)
    dump = subprocess.Popen(["ip", "netns", "exec", netns.name, "tcpdump", "-i", "nlmon0", "-U",
                             "-w", str(theirs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (theirs.exists() and theirs.stat().st_size):
        time.sleep(0.2)
    time.sleep(1)
    route_workload(netns)
    time.sleep(1)
    dump.send_signal(2)
    dump.communicate(timeout=TIMEOUT)
    run.stop()
    assert run.lost() == 0
    a, b = pairs(own), pairs(theirs)
    assert len(a) >= 8
    # the same pairs; the order of completion may differ: nlbpf sees a reply when
    # the process reads it, nlmon when the kernel sends it
    assert sorted(a) == sorted(b), "\n".join(["nlbpf:"] + list(map(str, a)) + ["nlmon:"] + list(map(str, b))
                              + [subprocess.run(nlbpf_cmd() + ["read", str(p)], capture_output=True,
                                                text=True).stdout for p in (own, theirs)])
    recs, err = read(theirs)
    assert err.count("no process information") == 1
    assert all(r["comm"] == "?" for r in recs)
