#!/usr/bin/env python3
"""Where `nlbpf trace` spends its time per message, stage by stage.

    sudo .venv/bin/python bench/costs.py [--tree PATH]

1. Kernel to Python: the probes fill the ring buffer with a burst that fits in
   it (a 50k-route dump, RTM_GETLINK requests, route adds and deletes) while nothing reads;
   then the buffer is drained with a consumer that does nothing with the
   records. That is the ceiling of bcc's ring buffer callback plus the
   conversion into Message objects.
2. The same captured messages go through the rest of trace's pipeline offline,
   one stage at a time: decoding, pairing and record building, JSON encoding
   and writing.

Prints microseconds per message per stage and the rate one CPU could sustain,
which is what bounds trace's lossless rate on a 2-core machine where the
workload has the other core.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NLLOAD = BENCH / "nlload.py"


def sh(*argv):
    return subprocess.run(list(map(str, argv)), check=True, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=str(BENCH.parent))
    ap.add_argument("--routes", type=int, default=50000)
    ap.add_argument("--getlink", type=int, default=5000)
    ap.add_argument("--route-ops", type=int, default=10000)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.tree).resolve()))
    os.chdir(a.tree)
    from nlbpf.capture.loader import Capture
    from nlbpf.filters import Filters
    from nlbpf.correlate import Correlator, classify_orphan
    try:
        from nlbpf.places import live_context
        context = live_context()
    except ImportError:         # a tree from before records were given their context
        context = None
    from nlbpf.output.records import Decoder, message_record
    from nlbpf.model import Message
    from nlbpf.output.jsonline import dumps
    from nlbpf.commands.live import tune_gc

    ns = f"nlcost-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
            f.write("".join(f"route add blackhole 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32\n"
                            for i in range(a.routes)))
        sh("ip", "-n", ns, "-batch", f.name)
        os.unlink(f.name)
        inode = os.stat(f"/run/netns/{ns}").st_ino
        cap = Capture(mode="trace", filters=Filters(netns=inode))
        cap.start()
        tune_gc()       # the collector as the live commands set it (live.run)
        sets = {}
        try:
            for name, argv in (
                    ("dump parts (RTM_NEWROUTE)", ["dump", "1"]),
                    ("RTM_GETLINK loop (req, NEWLINK, ACK)", ["getlink", str(a.getlink)]),
                    ("route add/del (req, ACK)", ["routes", str(a.route_ops // 2)])):
                out = sh("ip", "netns", "exec", ns, sys.executable, NLLOAD, *argv).stdout
                want = json.loads(out.strip().splitlines()[-1])["messages"]
                time.sleep(0.2)
                t0 = time.perf_counter()
                recs = []
                idle = 0
                while len(recs) < want and idle < 20:
                    got = cap.drain()
                    idle = 0 if got else idle + 1
                    recs.extend(got)
                dt = time.perf_counter() - t0
                msgs = [r for r in recs if isinstance(r, Message)]
                sets[name] = (msgs, dt / max(1, len(recs)), len(recs), want)
            stats = cap.stats()
        finally:
            cap.close()
    finally:
        sh("ip", "netns", "del", ns)

    print(f"kernel: {os.uname().release}; tree {a.tree}; lost in the kernel: {stats['lost']}")
    print()
    print("| messages | captured | drain + convert | decode | pair + record | JSON + write | total | one CPU sustains |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (msgs, drain_s, n, want) in sets.items():
        dec = Decoder(live_families=False)
        t0 = time.perf_counter()
        for m in msgs:
            dec(m)
        t_dec = time.perf_counter() - t0
        corr = Correlator()
        recs = []
        t0 = time.perf_counter()
        for m in msgs:
            txn, completed = corr.feed(m)
            if txn is None:
                m.direction = classify_orphan(m)
            recs.append(message_record(m, txn, completed, dec, 0, context))
        t_rec = time.perf_counter() - t0
        sink = io.StringIO()
        t0 = time.perf_counter()
        for r in recs:
            sink.write(dumps(r) + "\n")      # what trace --json writes with
        t_json = time.perf_counter() - t0
        k = max(1, len(msgs))
        per = [drain_s, t_dec / k, t_rec / k, t_json / k]
        total = sum(per)
        print(f"| {name} | {n:,}/{want:,} | " + " | ".join(f"{x * 1e6:.1f} µs" for x in per)
              + f" | {total * 1e6:.1f} µs | {1 / total:,.0f} msgs/s |")


if __name__ == "__main__":
    main()
