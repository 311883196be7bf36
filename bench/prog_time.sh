#!/bin/bash
# What each of nlbpf's BPF programs costs per run, from the kernel's own counters.
#
#   sudo bench/prog_time.sh errors            # or: top, trace --json, slow --threshold 1s, bare
#   sudo NLBPF_TREE=/tmp/nlbpf-head bench/prog_time.sh errors   # another checkout's probes
#
# Starts `nlbpf ARGS`, turns on kernel.bpf_stats_enabled, runs `ip -batch` of
# 10k route adds and 10k deletes in a throwaway netns, and prints each program's
# runs and ns per run over the batch (run_time_ns / run_cnt from bpftool; a
# tail-called walk counts in the program that called it). bpf_stats adds two
# clock reads per run: compare rows with each other, not with bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 bare|COMMAND [ARGS...]" >&2; exit 2; }
command -v bpftool >/dev/null || { echo "bpftool is missing: sudo scripts/setup.sh --test" >&2; exit 1; }
mode=$1; shift
tmp=$(mktemp -d); ns=nlbpf-progtime-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; sysctl -q kernel.bpf_stats_enabled=0; rm -rf "$tmp"; }
trap cleanup EXIT
for i in $(seq 0 9999); do echo "route add blackhole 10.$((i / 250)).$((i % 250)).0/24 table 100"; done > "$tmp/add"
sed 's/route add/route del/' "$tmp/add" > "$tmp/del"
ip netns add "$ns"; ip -n "$ns" link set lo up
sysctl -q kernel.bpf_stats_enabled=1
if [ "$mode" != bare ]; then
    if [ -n "${NLBPF_TREE:-}" ]; then
        # -P: the tree on PYTHONPATH, not this checkout, provides the nlbpf package
        PYTHONPATH="$NLBPF_TREE" .venv/bin/python -P -m nlbpf.cli "$mode" "$@" > "$tmp/out" 2>&1 & pid=$!
    else
        .venv/bin/nlbpf "$mode" "$@" > "$tmp/out" 2>&1 & pid=$!
    fi
    for _ in $(seq 100); do grep -q Tracing "$tmp/out" && break; sleep 0.1; done
    grep -q Tracing "$tmp/out" || { cat "$tmp/out" >&2; exit 1; }
fi
bpftool -j prog show > "$tmp/before"
start=$(date +%s.%N)
ip -n "$ns" -batch "$tmp/add"; ip -n "$ns" -batch "$tmp/del"
end=$(date +%s.%N)
bpftool -j prog show > "$tmp/after"
if [ "$mode" != bare ]; then kill -INT "$pid"; wait "$pid" || true; fi
python3 - "$tmp" "$start" "$end" <<'PY'
import json, sys
tmp, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
before = {p["id"]: p for p in json.load(open(f"{tmp}/before"))}
total = 0
print(f"ip -batch, 20k commands: {end - start:.3f} s")
for p in json.load(open(f"{tmp}/after")):
    was = before.get(p["id"], {})
    runs = p.get("run_cnt", 0) - was.get("run_cnt", 0)
    ns = p.get("run_time_ns", 0) - was.get("run_time_ns", 0)
    if runs:
        total += ns
        print(f"{p.get('name', '?'):<32} {runs:>8} runs {ns / runs:>7.0f} ns/run {ns / 1e6:>7.1f} ms")
print(f"all programs: {total / 1e6:.1f} ms")
PY
