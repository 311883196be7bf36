"""errors with less noise, live: --ignore drops iproute2's feature probe in the kernel
and counts it; text folds the repeats of one failure into a line with a count."""
import json
import os
import subprocess

import pytest

from tests.helpers.live import closing_numbers, hooks_args, nlbpf_cmd

pytestmark = pytest.mark.root
TIMEOUT = 900 if os.environ.get("NLBPF_VM") else 120
RUNS = 5


def layers():
    # the socket layer (errors' auto here) drops them in its own code; the syscall and
    # kernel layers share message.bpf.h's. The VM picks its layer (NLBPF_TEST_HOOKS).
    if os.environ.get("NLBPF_TEST_HOOKS"):
        return [[]]
    return [[], ["--hooks", "syscall"]]


def errors_of(netns, *args):
    script = "; ".join([f"ip -n {netns.name} link show lo >/dev/null"] * RUNS
                       + [f"ip -n {netns.name} route del 198.51.100.0/24 via 127.0.0.1"])
    return subprocess.run(nlbpf_cmd() + ["errors", *args] + hooks_args()
                          + ["--", "sh", "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("layer", layers())
def test_ignore_drops_the_expected_failures_in_the_kernel_and_counts_them(netns, layer):
    if os.environ.get("NLBPF_KERNEL_PROBE") == "fentry":
        pytest.skip("the kprobe run covers the kernel layer (the fentry run's time budget)")
    proc = errors_of(netns, "--json", "--ignore", "RTM_NEWLINK:ENODEV", *layer)
    assert proc.returncode == 2, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["type"], r["error"]) for r in recs] == [("RTM_DELROUTE", "ESRCH")], recs
    assert f"; {RUNS} failures ignored (RTM_NEWLINK:ENODEV {RUNS})" in proc.stderr
    numbers = closing_numbers(proc.stderr)
    assert numbers["lost"] == 0
    # the kernel dropped them: not handed over, so not among the events either
    assert numbers["events"] < 2 * RUNS, numbers


@pytest.mark.parametrize("layer", layers())
def test_text_folds_repeats_of_a_failure_into_one_line(netns, layer):
    if os.environ.get("NLBPF_VM"):
        # folding is userspace's, the same on every kernel: the host runs it, and the
        # VM's time (an attach costs ~30 s under emulation) goes to the --ignore test
        pytest.skip("userspace's part, the same on every kernel: the host runs it")
    proc = errors_of(netns, "--fold", "60", *layer)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    probes = [line for line in lines if "RTM_NEWLINK" in line and "ENODEV" in line]
    assert len(probes) == 2, lines          # the first in full, then the fold line
    assert f"{RUNS - 1} more in the 60s after it, from {RUNS - 1} processes" in probes[1]
    assert any("RTM_DELROUTE" in line and "ESRCH" in line for line in lines)
    assert proc.stderr.count("nlbpf: 2 records;") == 1, proc.stderr
