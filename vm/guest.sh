#!/bin/bash
# PID 1 of the test VM, exec'd by the image's /sbin/nlbpf-vm-init after it
# unpacked the payload disk (/dev/vdb) into /opt: the checkout in /opt/nlbpf
# and the run settings in /opt/vmrun.env (written by vm/run-tests.sh).
#
# Runs each layer, reports `VMTEST:` lines on the serial console, writes all
# results as a tar onto /dev/vdc and powers off. No `set -e`: PID 1 must always
# reach the power-off, whatever fails.
set -uo pipefail

export PATH=/opt/nlbpf-venv/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb TMPDIR=/tmp NLBPF_VM=1
# once stopped, nlbpf shows what it captured for 2 s at most (--drain); decoding a
# test's traffic takes longer than that under emulation, and the tests want it all
export NLBPF_DRAIN=120
src=/opt/nlbpf
venv=/opt/nlbpf-venv
out=/tmp/vmout

say() { echo "VMTEST: $*"; }

poweroff_now() {
    sync
    echo o >/proc/sysrq-trigger
    sleep 60
}

# --- the system a normal boot would give -----------------------------------
mount -o remount,rw / 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/netns /run/lock   # ip netns add needs /run/netns
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname nlbpf-vm
ip link set lo up
ulimit -l unlimited
mkdir -p "$out"

LAYERS="smoke fentry kprobe syscall"
LAYER_TIMEOUT=420
export COLUMNS=240       # pytest's summary lines: the whole failure message
VERBOSE=0
PYTEST_ARGS=()
BENCH_ARGS=
RUN_CMD=
# shellcheck source=/dev/null
[ -r /opt/vmrun.env ] && . /opt/vmrun.env

say "boot ok kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s layers=${LAYERS// /,}"

# --- the checkout ----------------------------------------------------------
# The image's venv has every dependency and an editable install of nlbpf
# pointing at $src, made from the pyproject.toml it recorded. Reinstall
# (offline, ~20 s under emulation) only if this checkout's pyproject differs:
# new console scripts or packages then get registered.
if [ "$(sha256sum <"$src/pyproject.toml")" != "$(cat "$venv/.nlbpf-pyproject.sha256" 2>/dev/null)" ]; then
    t=$(date +%s)
    if pip install -q --no-deps --no-build-isolation --no-index -e "$src" >"$out/install.log" 2>&1; then
        say "reinstalled nlbpf (pyproject.toml changed) $(($(date +%s) - t))s"
    else
        say "ERROR pip install -e $src failed (install.log)"
    fi
fi

# --- layers ----------------------------------------------------------------
has_tests=0
if find "$src/tests/integration" \( -name 'test_*.py' -o -name '*_test.py' \) 2>/dev/null | grep -q .; then
    has_tests=1
fi

layer_env() {   # $1 = pytest layer: the environment that picks its hook layer
    case $1 in
        fentry) echo NLBPF_TEST_HOOKS=kernel NLBPF_KERNEL_PROBE=fentry ;;
        kprobe) echo NLBPF_TEST_HOOKS=kernel NLBPF_KERNEL_PROBE=kprobe ;;
        syscall) echo NLBPF_TEST_HOOKS=syscall ;;
    esac
}

run_pytest() {   # $1 = layer, $2 = result dir
    cd "$src" || return 1
    # shellcheck disable=SC2046  # layer_env prints plain VAR=value words
    local cmd=(env $(layer_env "$1") timeout -k 10 "$LAYER_TIMEOUT" python -m pytest -m root
               tests/integration -p no:cacheprovider -rfEs --junitxml="$2/junit.xml"
               -o junit_suite_name="nlbpf-$1" -o junit_logging=system-out
               "${PYTEST_ARGS[@]}")
    echo "+ ${cmd[*]@Q}" >"$2/pytest.log"
    if [ "$VERBOSE" = 1 ]; then
        "${cmd[@]}" 2>&1 | tee -a "$2/pytest.log"
    else
        "${cmd[@]}" >>"$2/pytest.log" 2>&1
    fi
}

: >"$out/summary.txt"
for layer in $LAYERS; do
    d=$out/$layer
    mkdir -p "$d"
    t=$(date +%s)
    say "layer=$layer start"
    log=$d/pytest.log
    case $layer in
        smoke)
            log=$d/smoke.log
            timeout -k 10 "$LAYER_TIMEOUT" python "$src/vm/guest-smoke.py" >"$log" 2>&1 ;;
        fentry|kprobe|syscall)
            run_pytest "$layer" "$d" ;;
        run)
            # run-tests.sh --run CMD: its output on the console, line by line
            log=$d/run.log
            (cd "$src" && timeout -k 10 "$LAYER_TIMEOUT" bash -c "$RUN_CMD") 2>&1 |
                tee "$log" | sed -u 's/^/VMTEST: run | /'
            (exit "${PIPESTATUS[0]}") ;;
        shell)
            # run-tests.sh --shell: an interactive shell on the serial console
            log=$d/shell.log
            echo "nlbpf VM, kernel $(uname -r): the checkout is $src, nlbpf's venv on PATH;" \
                "exit powers off" >/dev/ttyS0
            (cd "$src" && setsid -c bash -i </dev/ttyS0 >/dev/ttyS0 2>&1)
            echo "shell exited $?" >"$log" ;;
        bench)
            # not a test: the hook layers' overhead side by side (bench/run.py)
            log=$d/bench.log
            # shellcheck disable=SC2086  # BENCH_ARGS is a list of plain words
            (cd "$src" && timeout -k 10 "$LAYER_TIMEOUT" python bench/run.py $BENCH_ARGS \
                --machine "qemu guest under TCG (software emulation, 2 vCPUs): every hook layer" \
                --label "the hook layers side by side, in the VM (\`sudo vm/run-tests.sh --layers bench --layer-timeout 3000\`; emulated: compare rows with each other, not with the host's tables)" \
                --out "$d/RESULTS.md" --json-out "$d/results.json") >"$log" 2>&1
            rc=$?
            # the verdicts, printed once at the end (not a fixed number of lines)
            grep -E '^- (met|MISSED|info)' "$log" | sed 's/^/VMTEST: bench /'
            (exit $rc) ;;
        *)
            log=$d/error.log
            echo "unknown layer $layer" >"$log"; false ;;
    esac
    rc=$?
    # Emulation is noisy: a few failed tests are run once more, alone. Passing
    # then makes the layer FLAKY, which still names them and their first failure.
    flaky=
    if [ $rc -eq 1 ] && [ "$log" = "$d/pytest.log" ]; then
        mapfile -t failed < <(grep -E '^FAILED ' "$log" | sed 's/^FAILED \([^ ]*\).*/\1/')
        if [ ${#failed[@]} -ge 1 ] && [ ${#failed[@]} -le 3 ]; then
            say "layer=$layer rerun ${failed[*]}"
            cp "$log" "$d/pytest-first.log"
            # shellcheck disable=SC2046  # as in run_pytest
            if (cd "$src" && env $(layer_env "$layer") timeout -k 10 "$LAYER_TIMEOUT" \
                    python -m pytest -m root -p no:cacheprovider -rfEs "${failed[@]}") \
                    >"$d/pytest-rerun.log" 2>&1; then
                flaky=1
                rc=0
            fi
        fi
    fi
    case $rc in
        0) status=PASS; [ -n "$flaky" ] && status=FLAKY ;;
        5) if [ $has_tests = 1 ]; then status=FAIL; else status=NOTESTS; fi ;;
        124|137) status=TIMEOUT ;;
        *) status=FAIL ;;
    esac
    secs=$(($(date +%s) - t))
    # The log's last line: pytest's closing line, or the smoke check's result.
    last=$(tail -n 1 "$log" 2>/dev/null | sed 's/^[= ]*//; s/[= ]*$//')
    [ -n "$flaky" ] && last="$last; run again: $(tail -n 1 "$d/pytest-rerun.log" | sed 's/^[= ]*//; s/[= ]*$//')"
    echo "$layer $status $rc $secs" >>"$out/summary.txt"
    say "layer=$layer status=$status rc=$rc time=${secs}s $last"
    # Which tests failed and why, on the console: the host may get nothing
    # else back (a CI log keeps only the console's VMTEST lines).
    if [ "$status" != PASS ]; then
        [ -n "$flaky" ] && log=$d/pytest-first.log
        grep -E '^(FAILED|ERROR) ' "$log" 2>/dev/null | head -n 20 | cut -c1-400 |
            sed "s/^/VMTEST: layer=$layer detail /"
        # the assertion lines of each failure, for failures whose summary is cut
        grep -E '^E  ' "$log" 2>/dev/null | head -n 30 | cut -c1-300 |
            sed "s/^/VMTEST: layer=$layer detail /"
    fi
done

# --- results out -------------------------------------------------------------
dmesg >"$out/dmesg.txt" 2>&1
uname -a >"$out/uname.txt"
size=$(blockdev --getsize64 /dev/vdc 2>/dev/null || echo 0)
tar -C "$out" -cf /tmp/results.tar .
if [ "$(stat -c %s /tmp/results.tar)" -gt "$size" ]; then
    say "ERROR results ($(stat -c %s /tmp/results.tar) bytes) do not fit /dev/vdc ($size bytes)"
elif dd if=/tmp/results.tar of=/dev/vdc bs=1M conv=fsync status=none; then
    say "done"
else
    say "ERROR could not write results to /dev/vdc"
fi
poweroff_now
