#!/usr/bin/env bash
# Run nlbpf's root integration tests in a VM with Debian's stock kernel
# (kprobes, fentry, BTF, nlmon), once per hook layer, all in one boot.
#
#   sudo vm/run-tests.sh [options] [-- extra pytest args]
#
# Options:
#   --layers LIST       comma-separated, from smoke,fentry,kprobe,syscall,bench
#                       (default: smoke,fentry,kprobe,syscall)
#   --bench-args ARGS   bench/run.py's arguments for the bench layer (one string,
#                       split on spaces; default: the layer comparison below)
#   --out DIR           results directory (default: vm/results; emptied first)
#   --layer-timeout SEC one layer inside the guest (default 420)
#   --timeout SEC       whole VM run, boot to power-off
#                       (default 240 + layers x layer-timeout)
#   --rebuild           rebuild the cached image even if its key matches
#   -v, --verbose       copy the whole serial console (and pytest output) here
#   --run CMD           try something by hand: boot, run CMD (bash, in /opt/nlbpf with
#                       nlbpf's venv on PATH, as root), show its output, exit 0 if it
#                       succeeded. e.g. --run 'nlbpf doctor && nlbpf errors --duration 20'
#   --shell             an interactive shell on the guest's serial console, on this
#                       terminal; the VM powers off when it exits (Ctrl-A X: at once)
#
# Layers: smoke = bcc/kprobe/fentry/nlmon check of the guest itself;
# fentry = NLBPF_TEST_HOOKS=kernel NLBPF_KERNEL_PROBE=fentry;
# kprobe = NLBPF_TEST_HOOKS=kernel NLBPF_KERNEL_PROBE=kprobe;
# syscall = NLBPF_TEST_HOOKS=syscall. Each pytest layer runs
# `python -m pytest -m root tests/integration [extra args]` in /opt/nlbpf.
# bench = not a test: bench/run.py comparing the hook layers' overhead on one
# kernel that has them all (results in DIR/bench/RESULTS.md). Under software
# emulation; give it --layer-timeout 3000.
# Exit status: 0 if every layer passed (or had no tests to run), else 1. A layer
# whose 1-3 failed tests all pass when run once more alone is FLAKY: it passes,
# and the summary names those tests and how they first failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
layers=smoke,fentry,kprobe,syscall
out=$here/results
timeout=
layer_timeout=420
rebuild=()
verbose=0
pytest_args=()
run_cmd=
layer_timeout_given=
bench_args="--reps 3 --workloads getlink,batch,other --other-count 200000 --getlink-count 2000 --batch-routes 2000 --fail-deletes 20 --dump-routes 100 --no-throughput --configs bare,floor,floor-raw,errors@syscall,errors@fentry,errors@kprobe,top@syscall,top@fentry,trace@syscall,trace@fentry"

while [ $# -gt 0 ]; do
    case "$1" in
        --layers) layers=${2:?--layers needs a list}; shift ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --timeout) timeout=${2:?}; shift ;;
        --layer-timeout) layer_timeout=${2:?}; layer_timeout_given=1; shift ;;
        --rebuild) rebuild=(--force) ;;
        --bench-args) bench_args=${2:?--bench-args needs a string}; shift ;;
        -v|--verbose) verbose=1 ;;
        --run) run_cmd=${2:?--run needs a command}; layers=run; shift ;;
        --shell) layers=shell ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "run-tests.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# a shell is for a person: an hour unless told otherwise
[ "$layers" = shell ] && [ -z "$layer_timeout_given" ] && layer_timeout=3600
for l in ${layers//,/ }; do
    case "$l" in smoke|fentry|kprobe|syscall|bench|run|shell) ;; *) echo "run-tests.sh: unknown layer $l" >&2; exit 2 ;; esac
done
# Room for boot, power-off and every layer to hit its own limit: the guest
# then still writes its results before the host gives up on it.
n=$(wc -w <<<"${layers//,/ }")
: "${timeout:=$((240 + n * layer_timeout))}"
[ "$(id -u)" -eq 0 ] || { echo "run-tests.sh: must run as root (builds the image)" >&2; exit 1; }

say() { echo "vm: $*" >&2; }

t_start=$(date +%s)
entry=$("$here/build-image.sh" "${rebuild[@]}")
t_built=$(date +%s)

tmp=$(mktemp -d /var/tmp/nlbpf-vm.XXXXXX)
qpid=
tpid=
cleanup() {
    # qpid is timeout(1), which passes the signal on to qemu.
    if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
    if [ -n "$tpid" ]; then kill "$tpid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Root disk: a sparse copy per run, so the cache holds only the .zst; qemu
# also runs it with snapshot=on, so nothing the guest does is ever written.
zstd -q -d "$entry/rootfs.ext4.zst" -o "$tmp/rootfs.ext4"

# The Go test clients, built here: the guest has no Go toolchain (their tests skip
# there without them).
bash "$repo/tests/clients/build.sh" || echo "run-tests.sh: the Go test clients were not built" >&2

# Payload disk (/dev/vdb): this checkout as /opt/nlbpf plus the run settings.
mkdir -p "$tmp/payload/nlbpf"
tar -C "$repo" -cf - --exclude-vcs --exclude=./.venv --exclude=./vm/results --exclude=./vm/cache \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.hypothesis \
    --exclude=./build --exclude=./dist . | tar -C "$tmp/payload/nlbpf" -xf -
# which commit the guest runs (it has no git; bench/run.py names it in its results)
git -C "$repo" describe --always --dirty >"$tmp/payload/nlbpf/COMMIT" 2>/dev/null || rm -f "$tmp/payload/nlbpf/COMMIT"
{
    echo "LAYERS=\"${layers//,/ }\""
    echo "LAYER_TIMEOUT=$layer_timeout"
    echo "VERBOSE=$verbose"
    printf 'PYTEST_ARGS=('; [ ${#pytest_args[@]} -gt 0 ] && printf '%q ' "${pytest_args[@]}"; echo ')'
    printf 'BENCH_ARGS=%q\n' "$bench_args"
    printf 'RUN_CMD=%q\n' "$run_cmd"
} >"$tmp/payload/vmrun.env"
tar -C "$tmp/payload" -cf "$tmp/payload.tar" nlbpf vmrun.env

# Results disk (/dev/vdc): the guest writes a plain tar onto it.
truncate -s 512M "$tmp/results.img"

# Emptied first, but only if it looks like an earlier run's results.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -e "$out/console.log" ]; then
    echo "run-tests.sh: $out is not empty and holds no earlier results; not touching it" >&2
    exit 2
fi
rm -rf "$out"
mkdir -p "$out"
console=$out/console.log

# No NIC at all (-nic none): the guest has no network.
qemu=(timeout -k 10 "$timeout" qemu-system-x86_64
    -accel tcg,thread=multi -cpu max -smp 2 -m 2048 -nographic -no-reboot -nic none
    -kernel "$entry/vmlinuz" -initrd "$entry/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 init=/sbin/nlbpf-vm-init panic=-1 quiet"
    -drive file="$tmp/rootfs.ext4",format=raw,if=virtio,snapshot=on
    -drive file="$tmp/payload.tar",format=raw,if=virtio,readonly=on
    -drive file="$tmp/results.img",format=raw,if=virtio)
if [ "$layers" = shell ]; then
    # the serial console on this terminal (or whatever stdin gives), a copy in the log
    say "booting $(basename "$entry") for a shell (under emulation: a minute or two)"
    rc=0
    "${qemu[@]}" 2>&1 | tee "$console" || rc=$?
    exit $rc
fi
"${qemu[@]}" \
    </dev/null >"$console" 2>&1 &
qpid=$!
say "booting $(basename "$entry") (kernel $(sed -n 's/^release=//p' "$entry/info.txt")), layers: $layers"
# Follow the console as it is written: VMTEST lines only, unless -v. In the
# background, so that a signal to this script is handled at once.
if [ $verbose -eq 1 ]; then
    tail -n +1 --pid="$qpid" -f "$console" >&2 &
else
    tail -n +1 --pid="$qpid" -f "$console" | grep --line-buffered -o $'VMTEST:[^\r]*' >&2 &
fi
tpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tpid" || true
t_end=$(date +%s)

# --- results -----------------------------------------------------------------
tr -d '\r' <"$console" >"$console.tmp" && mv "$console.tmp" "$console"
grep -o 'VMTEST:.*' "$console" >"$out/vmtest.txt" || true
finished=0
grep -q '^VMTEST: done' "$out/vmtest.txt" && finished=1
if [ $finished -eq 1 ]; then
    tar -C "$out" -xf "$tmp/results.img" || finished=0
fi

fail=0
echo
echo "VM test summary (results in $out)"
if [ $finished -ne 1 ]; then
    fail=1
    [ $qrc -eq 124 ] && why="timed out after ${timeout}s" || why="qemu exited $qrc before VMTEST: done"
    echo "  VM did not finish: $why; last console lines:"
    tail -n 30 "$console" | sed 's/^/    | /'
fi
# From the console, so that a VM that died midway still reports what it did.
for l in ${layers//,/ }; do
    line=$(grep "^VMTEST: layer=$l status=" "$out/vmtest.txt" | tail -n 1 || true)
    if [ -z "$line" ]; then
        printf '  %-8s %s\n' "$l" "NOT RUN"
        fail=1
        continue
    fi
    status=$(sed 's/.* status=\([A-Z]*\).*/\1/' <<<"$line")
    secs=$(sed 's/.* time=\([0-9]*\)s.*/\1/' <<<"$line")
    detail=$(sed 's/.* time=[0-9]*s *//' <<<"$line")
    printf '  %-8s %-8s %5ss  %s\n' "$l" "$status" "$secs" "$detail"
    grep "^VMTEST: layer=$l detail " "$out/vmtest.txt" | sed 's/^VMTEST: layer=[a-z]* detail /           | /' || true
    case $status in PASS|NOTESTS|FLAKY) ;; *) fail=1 ;; esac
done
echo "  image $(( t_built - t_start ))s, VM boot-to-poweroff $(( t_end - t_built ))s, total $(( t_end - t_start ))s"
[ $fail -eq 0 ] && echo "  result: OK" || echo "  result: FAILED"
exit $fail
