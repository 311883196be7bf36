"""Reading a big nlmon capture takes memory bounded by a window, not by the file's size.

An nlmon capture has no process in it: a request learns its port from its reply,
and waits for it (recording.PortResolver). Some requests are never answered (no
NLM_F_ACK), so what comes after them waits too, for a bounded time and size;
the views' own state is bounded by time (the correlator's 30 s) and count. The
test writes two nlmon-style captures (tests/fixtures/pcap/readcheck.write_nlmon:
a round every 5 ms, each with a request nothing answers), 40 and 160 MB, reads
each in its own process and compares their peak RSS: reading four times the
data must not take more than a few MB more. Here: 109 and 110 MB. Before the
window, every record after the first nlmon packet was kept until the end of
the file: 429 MB and 1.59 GB.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import readcheck as rc

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20

# The child's own peak: VmHWM belongs to its address space, made new by exec
# (getrusage's ru_maxrss does not do: Linux carries it over from the parent, here
# pytest, through fork and exec).
PEAK = """
import sys
from nlbpf import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as e:
    code = e.code
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("PEAK_KB", hwm[0], "EXIT", code, file=sys.stderr)
"""


def peak_kb(*argv):
    out = subprocess.run([sys.executable, "-c", PEAK] + [str(a) for a in argv],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         cwd=str(ROOT), timeout=600)
    last = out.stderr.strip().splitlines()[-1].split()
    assert last[0] == "PEAK_KB" and last[3] == "0", out.stderr[-3000:]
    return int(last[1])


@pytest.fixture
def captures(tmp_path):
    paths = {}
    for size in (40, 160):
        path = paths[size] = tmp_path / f"nlmon-{size}.pcap"
        rc.write_nlmon(path, size * MB, spacing_ns=5_000_000)
    yield paths
    for path in paths.values():
        path.unlink()


def test_reading_a_big_nlmon_capture_takes_bounded_memory(captures):
    small = peak_kb("errors", "--read", captures[40], "--json")
    big = peak_kb("errors", "--read", captures[160], "--json")
    print(f"peak RSS: {small / 1024:.0f} MB for 40 MB, {big / 1024:.0f} MB for 160 MB")
    assert big - small < 24 * 1024, (small, big)
    assert big < 160 * 1024, (small, big)
