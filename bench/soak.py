#!/usr/bin/env python3
"""Soak: every nlbpf command at once under sustained netlink load, RSS over time.

    sudo .venv/bin/python bench/soak.py                   10 minutes, all commands
    sudo .venv/bin/python bench/soak.py --minutes 2 --rate 500 --out soak.json

Starts `nlbpf trace --json`, `errors --json`, `slow --threshold 1ms --json`,
`top --json`, `record -w /dev/null` and `serve --slow 1ms --events` on one
throwaway network namespace, and
a workload in it that keeps every kind of state nlbpf holds busy:

  * distinct blackhole /32 route adds and deletes (no two messages alike: the
    decoder's memo cannot absorb them), deletes of missing routes (ESRCH, for
    `errors`), RTM_GETLINK, generic netlink family lookups;
  * requests whose reply is never read (their socket closes first): they
    stay in the kernel's LRU `pending` map and in the correlator until they
    expire (30 s);
  * a failed xfrm SA add carrying a key (the secrets path);
  * a new short-lived `ip` process every 2 s (pid churn: top's per-pid rows,
    context caches).

Every --sample seconds it records each nlbpf process's RSS; at the end it
stops them with SIGINT and prints one JSON object: per command the RSS at
warm-up end, at the end, min/max, the slope over the run after warm-up
(MB per 10 min), and each command's closing stderr line (records, events,
lost). Traffic goes only to the kernel inside the namespace.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "trace": ["trace", "--json"],
    "errors": ["errors", "--json"],
    "slow": ["slow", "--threshold", "1ms", "--json"],
    "top": ["top", "--json", "-i", "5"],
    "record": ["record", "-w", "/dev/null"],
    # the exporter, scraped by nothing: its label sets and deltas are what grow, if anything
    "serve": ["serve", "--listen", "127.0.0.1:9441", "--slow", "1ms", "--events"],
}
TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."


# ----------------------------------------------------------------- the workload
def _msg(type_, flags, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, 0) + payload


def _route(i, type_, flags, seq):
    rt = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 3, 0, 6, 0)
    dst = struct.pack("!I", (10 << 24) | (i & 0xFFFFFF))
    return _msg(type_, flags, seq, rt + struct.pack("=HH", 8, 1) + dst)


def _drain(s, seq):
    """Read until the final reply of seq; returns messages received."""
    got = 0
    while True:
        data = s.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            ln, t, fl, sq, _ = struct.unpack_from("=IHHII", data, off)
            if ln < 16:
                return got
            got += 1
            if sq == seq and (t in (2, 3) or not fl & 2):
                return got
            off += (ln + 3) & ~3


def workload(seconds, rate):
    """Runs inside the netns; prints what it sent."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.bind((0, 0))
    g = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
    g.bind((0, 0))
    x = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)
    x.bind((0, 0))
    ack = 1 | 4
    counts = {"requests": 0, "received": 0, "unanswered": 0}
    start = time.monotonic()
    deadline = start + seconds
    seq = i = 0
    while time.monotonic() < deadline:
        i += 1
        seq += 1
        kind = i % 8
        if kind in (0, 1):
            s.send(_route(i // 8, 24, ack | 0x600, seq))            # RTM_NEWROUTE
            counts["received"] += _drain(s, seq)
            seq += 1
            s.send(_route(i // 8, 25, ack, seq))                    # RTM_DELROUTE
            counts["requests"] += 1
        elif kind == 2:
            s.send(_route(0xFFFFFF, 25, ack, seq))                  # ESRCH
        elif kind == 3:
            g.send(_msg(16, ack, seq, bytes((3, 1, 0, 0)) +
                        struct.pack("=HH", 11, 2) + b"nlctrl\0" + b"\0"))
            counts["requests"] += 1
            counts["received"] += _drain(g, seq)
            continue
        elif kind == 4 and i % 200 == 4:
            info = bytearray(224)
            struct.pack_into("=H", info, 212, 2)
            algo = b"cbc(aes)".ljust(64, b"\0") + struct.pack("=I", 128) + os.urandom(16)
            x.send(_msg(0x10, ack | 0x600, seq, bytes(info) + struct.pack("=HH", 4 + len(algo), 2)
                        + algo))
            counts["requests"] += 1
            counts["received"] += _drain(x, seq)
            continue
        elif kind == 5 and i % 40 == 5:
            # a request whose reply nobody reads
            t = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
            t.bind((0, 0))
            t.send(_msg(18, ack, seq, struct.pack("=BxHiII", 0, 0, 1, 0, 0)))
            t.close()
            counts["requests"] += 1
            counts["unanswered"] += 1
            continue
        else:
            s.send(_msg(18, ack, seq, struct.pack("=BxHiII", 0, 0, 1, 0, 0)))   # RTM_GETLINK lo
        counts["requests"] += 1
        counts["received"] += _drain(s, seq)
        # pace
        ahead = counts["requests"] / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    counts["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(counts), flush=True)


# ----------------------------------------------------------------- the soak
def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def nlbpf_cmd():
    exe = Path(sys.executable).parent / "nlbpf"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nlbpf.cli"]


def slope_mb_per_10min(samples):
    """Least-squares slope of (t, rss) in MB per 10 minutes."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if not var:
        return None
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return round(cov / var * 600 / 1024, 2)


def soak(args):
    ns = f"nlbpf-soak-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    procs = {}
    try:
        for name in args.commands:
            argv = nlbpf_cmd() + COMMANDS[name] + ["--netns", ns]
            err = open(f"/tmp/{ns}-{name}.err", "w+")
            procs[name] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"}), err)
        deadline = time.monotonic() + 300
        for name, (p, err) in procs.items():
            while TRACING_LINE not in Path(err.name).read_text():
                if p.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"nlbpf {name} did not start:\n{Path(err.name).read_text()}")
                time.sleep(0.5)
        seconds = args.minutes * 60
        load = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, __file__,
                                 "--workload", str(seconds), str(args.rate)],
                                stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        samples = {name: [] for name in procs}
        next_sample = t0
        next_churn = t0
        while load.poll() is None:
            now = time.monotonic()
            if now >= next_churn:
                subprocess.run(["ip", "-n", ns, "link", "show", "lo"], capture_output=True)
                next_churn = now + 2
            if now >= next_sample:
                row = {"t": round(now - t0, 1)}
                for name, (p, _) in procs.items():
                    kb = rss_kb(p.pid)
                    row[name] = kb
                    if kb is not None:
                        samples[name].append((now - t0, kb))
                if args.verbose:
                    print(json.dumps(row), file=sys.stderr, flush=True)
                next_sample = now + args.sample
            time.sleep(0.2)
        work = json.loads(load.stdout.read().strip().splitlines()[-1])
        result = {"minutes": args.minutes, "rate": args.rate, "workload": work,
                  "sample_s": args.sample, "warmup_s": args.warmup, "commands": {}}
        for name, (p, err) in procs.items():
            p.send_signal(signal.SIGINT)
            p.wait(60)
            lines = Path(err.name).read_text().splitlines()
            closing = [ln for ln in lines if ln.startswith("nlbpf:")]
            s = samples[name]
            after = [(t, r) for t, r in s if t >= args.warmup] or s
            result["commands"][name] = {
                "rss_mb_warm": round(after[0][1] / 1024, 1) if after else None,
                "rss_mb_end": round(s[-1][1] / 1024, 1) if s else None,
                "rss_mb_min": round(min(r for _, r in after) / 1024, 1) if after else None,
                "rss_mb_max": round(max(r for _, r in after) / 1024, 1) if after else None,
                "slope_mb_per_10min": slope_mb_per_10min(after),
                "exit": p.returncode,
                "closing": closing[-1] if closing else None,
                "warnings": [ln for ln in lines if ln.startswith("WARNING")][:5],
                "samples_kb": [r for _, r in s],
            }
        out = json.dumps(result, indent=1)
        print(out)
        if args.out:
            Path(args.out).write_text(out + "\n")
        return result
    finally:
        for p, err in procs.values():
            if p.poll() is None:
                p.kill()
            err.close()
            try:
                os.unlink(err.name)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=1000, help="requests per second")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds before RSS is expected to be flat (caches fill, 30 s expiry)")
    ap.add_argument("--commands", default=",".join(COMMANDS),
                    help="comma-separated: " + ",".join(COMMANDS))
    ap.add_argument("--out", help="also write the JSON result here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each sample on stderr")
    ap.add_argument("--workload", nargs=2, metavar=("SECONDS", "RATE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workload:
        workload(float(args.workload[0]), int(args.workload[1]))
        return 0
    if os.geteuid() != 0:
        print("soak.py: run as root (nlbpf loads eBPF probes)", file=sys.stderr)
        return 1
    args.commands = [c for c in args.commands.split(",") if c]
    bad = [c for c in args.commands if c not in COMMANDS]
    if bad:
        print(f"soak.py: unknown command(s) {bad}", file=sys.stderr)
        return 2
    soak(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
