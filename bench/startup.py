"""How long each command takes to start: from exec to its Tracing line on stderr (the
probes attached), doctor to its end; and two commands started together.

    sudo .venv/bin/python bench/startup.py [--reps 7] [--compare-tree DIR]

--compare-tree runs another checkout's nlbpf (`python -m nlbpf.cli` from that
directory, with this venv) side by side, in the same shuffled order per repetition,
so that drift hits both alike: a before/after in one run. The boot cache
(/run/nlbpf: struct offsets, refusals) is warm for both, as it is for a user's
second start after boot.
"""
import argparse
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
TRACING = "Tracing netlink"
COMMANDS = {
    "trace": ["trace", "--json"],
    "errors": ["errors", "--json"],
    "top": ["top", "--json"],
    "slow": ["slow", "--threshold", "500ms", "--json"],
}
TIMEOUT_S = 120


def started(tree, args):
    return subprocess.Popen([sys.executable, "-m", "nlbpf.cli", *args], cwd=str(tree),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def until_tracing(procs, t0):
    """Seconds until every one of procs said its Tracing line; then each is stopped."""
    try:
        for p in procs:
            for line in p.stderr:
                if TRACING in line:
                    break
            else:
                raise RuntimeError(f"{p.args} ended before its Tracing line")
        return time.monotonic() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.communicate(timeout=TIMEOUT_S)


def measure(tree, what):
    t0 = time.monotonic()
    if what == "doctor":
        subprocess.run([sys.executable, "-m", "nlbpf.cli", "doctor"], cwd=str(tree),
                       capture_output=True, timeout=TIMEOUT_S)
        return time.monotonic() - t0
    if what == "trace + errors":
        return until_tracing([started(tree, COMMANDS["trace"]),
                              started(tree, COMMANDS["errors"])], t0)
    return until_tracing([started(tree, COMMANDS[what])], t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--compare-tree", type=Path, help="another checkout, run side by side")
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--compare-label", default="compared tree")
    a = ap.parse_args()
    trees = {a.label: HERE}
    if a.compare_tree:
        trees[a.compare_label] = a.compare_tree.resolve()
    whats = list(COMMANDS) + ["trace + errors", "doctor"]
    runs = {(t, w): [] for t in trees for w in whats}
    rnd = random.Random(1)
    for rep in range(a.reps):
        order = [(t, w) for t in trees for w in whats]
        rnd.shuffle(order)
        for t, w in order:
            runs[(t, w)].append(measure(trees[t], w))
        print(f"rep {rep + 1}/{a.reps} done", file=sys.stderr)
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for w in whats:
        cells = []
        for t in trees:
            r = runs[(t, w)]
            cells.append(f"{statistics.median(r):.2f} s ({min(r):.2f}–{max(r):.2f})")
        print(f"| {w} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
