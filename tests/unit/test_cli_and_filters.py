"""Option parsing and bad input: one line, non-zero exit, never a traceback."""
import os
import subprocess
import sys

import pytest

from nlbpf.capture.btf import BTF, BTF_PATH, probe_offsets
from nlbpf.cli import parse_duration_ns
from nlbpf.commands.top import bucket_mid_ns, percentile_ns
from nlbpf.errors import NlbpfError
from nlbpf.filters import Filters, parse_protocol, parse_type

NLBPF = [sys.executable, "-m", "nlbpf.cli"]


def run(*args, user=None):
    return subprocess.run(NLBPF + list(args), capture_output=True, text=True, user=user)


@pytest.mark.parametrize("text,ns", [("500ms", 500_000_000), ("1.5s", 1_500_000_000),
                                     ("200us", 200_000), ("750", 750_000_000), ("10ns", 10)])
def test_durations(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["fast", "5 minutes", "-1ms", "ms"])
def test_bad_durations(text):
    with pytest.raises(NlbpfError):
        parse_duration_ns(text)


def test_protocol_and_type_names():
    assert parse_protocol("route") == 0 and parse_protocol("NETLINK_GENERIC") == 16
    assert parse_protocol("rtnl") == 0 and parse_protocol("12") == 12
    assert parse_protocol("31") == 31 and parse_type("65535") == 65535
    assert parse_type("RTM_DELROUTE") == 25 and parse_type("rtm_getlink") == 18
    assert parse_type("0x1a") == 26
    with pytest.raises(NlbpfError):
        parse_protocol("bogus")
    with pytest.raises(NlbpfError):
        parse_type("RTM_NOPE")


def test_filters_become_defines():
    f = Filters.from_options(pid=42, comm="ip", proto="route", type_="RTM_DELROUTE")
    assert f.cflags() == ["-DFILTER_PID=42", '-DFILTER_COMM="ip"', "-DFILTER_PROTO=0",
                          "-DFILTER_TYPE=25"]


def test_netns_filter_takes_a_pid():
    inode = os.stat("/proc/self/ns/net").st_ino
    assert Filters.from_options(netns=str(os.getpid())).netns == inode
    with pytest.raises(NlbpfError):
        Filters.from_options(netns="no-such-netns-here")


@pytest.mark.parametrize("args", [["trace", "--bogus"], ["slow", "--threshold", "soon"],
                                  ["top", "-i", "0"], ["errors", "--proto", "nope"],
                                  ["nosuchcommand"], ["trace", "--snaplen", "5"],
                                  # nan passed every range check and ran forever
                                  ["errors", "--duration", "nan"], ["trace", "--duration", "inf"],
                                  ["top", "-i", "nan"], ["read", "x", "-i", "nan"],
                                  ["trace", "--drain", "nan"], ["errors", "--drain", "-1"],
                                  # netlink has protocols 0-31: 999 captured nothing
                                  ["errors", "--proto", "999"], ["errors", "--proto", "32"],
                                  ["errors", "--type", "70000"], ["errors", "--type", "-1"],
                                  ["errors", "--pid", "99999999999"],
                                  ["errors", "--netns", "99999999999"],
                                  ["serve", "--listen", "nowhere"], ["serve", "--slow", "soon"],
                                  ["serve", "--json"], ["serve", "--max-label-sets", "0"],
                                  ["serve", "--interval", "nan"], ["serve", "--listen", ":0"]])
def test_bad_input_is_one_line_and_nonzero(args):
    r = run(*args)
    assert r.returncode != 0
    assert r.stderr.startswith("nlbpf: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_non_root_user_gets_one_line():
    if os.geteuid() != 0:
        r = run("trace", "--duration", "1")
    else:
        r = run("trace", "--duration", "1", user="nobody")
    assert r.returncode == 1
    assert r.stderr.strip() == ("nlbpf: nlbpf needs root (or CAP_BPF, CAP_PERFMON and "
                                "CAP_DAC_READ_SEARCH) to load eBPF probes; run it with sudo")


@pytest.mark.skipif(not os.path.exists(BTF_PATH), reason="kernel without BTF")
def test_btf_offsets_of_the_running_kernel():
    btf = BTF.load()
    offs = probe_offsets(btf)
    # netlink_sock starts with its struct sock; portid lies past it
    assert offs["OFF_NLSK_PORTID"] >= btf.size("sock")
    assert offs["OFF_MUTEX_OWNER"] == 0
    assert offs["OFF_NET_INUM"] == btf.offset("net.ns") + btf.offset("ns_common.inum")


def test_latency_percentiles_from_the_kernel_histogram():
    hist = [0] * 128
    # 2**20 ns (~1ms) lands in bucket 40; 2**23 in 46
    hist[40] = 99
    hist[46] = 1
    assert bucket_mid_ns(40) == (1 << 20) + (1 << 18)
    assert percentile_ns(hist, 0.5) == bucket_mid_ns(40)
    assert percentile_ns(hist, 0.999) == bucket_mid_ns(46)
    assert percentile_ns([0] * 128, 0.5) is None
