#!/usr/bin/env bash
# The README's example outputs, made again from real runs of this checkout.
#
#   sudo scripts/examples.sh [OUTDIR]      (default: /tmp/nlbpf-examples)
#
# Each example is a file in OUTDIR holding the command line, then what it printed
# (stderr and stdout, in the order they came). Traffic goes to the kernel inside a
# network namespace `demo` made here and deleted at the end. Takes ~3 minutes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-/tmp/nlbpf-examples}
nlbpf=$root/.venv/bin/nlbpf
py=$root/.venv/bin/python
[ "$(id -u)" -eq 0 ] || { echo "examples.sh: run as root" >&2; exit 1; }
[ -x "$nlbpf" ] || { echo "examples.sh: run scripts/setup.sh first" >&2; exit 1; }
mkdir -p "$out"

ns=demo
ip netns del $ns 2>/dev/null || true
ip netns add $ns
ip -n $ns link set lo up
trap 'ip netns del $ns 2>/dev/null || true' EXIT

# the pyroute2 client of the seed incident: a route delete with RTA_OIF=0
oif0='from pyroute2 import IPRoute
with IPRoute() as ipr:
    try:
        ipr.route("del", dst="198.51.100.0/24", oif=0)
    except Exception:
        pass'

# start CMD... in the background, output to FILE; waits for its Tracing line
start() {
    local file=$1; shift
    echo "\$ sudo nlbpf $*" > "$out/$file"
    "$nlbpf" "$@" >> "$out/$file" 2>&1 &
    bg=$!
    for _ in $(seq 1 300); do
        grep -q "Tracing netlink" "$out/$file" && return 0
        sleep 0.1
    done
    echo "examples.sh: nlbpf $* did not start" >&2
    exit 1
}
stop() { sleep "${1:-0.5}"; kill -INT "$bg"; wait "$bg" || true; }
failing() {      # the route changes of trace's and errors' examples
    ip -n $ns route add 10.1.0.0/24 dev lo 2>/dev/null || true
    ip -n $ns route add 10.1.0.0/24 dev lo 2>/dev/null || true          # EEXIST
    ip -n $ns route del 198.51.100.0/24 via 127.0.0.1 2>/dev/null || true   # ESRCH
    ip -n $ns route add 10.9.0.1/24 dev lo 2>/dev/null || true          # EINVAL + extack
    ip netns exec $ns "$py" -c "$oif0"
}

echo "examples: trace" >&2
start trace.txt trace --netns $ns
failing
stop

echo "examples: errors" >&2
ip -n $ns route del 10.1.0.0/24 dev lo      # trace's: failing() adds it again
start errors.txt errors --netns $ns
failing
ip netns exec $ns "$py" "$root/tests/nlclient.py" overrun 1 >/dev/null &
overrun=$!
sleep 0.3
ip -n $ns -batch <(for i in $(seq 0 99); do echo "route add blackhole 10.5.$i.0/24"; done) 2>/dev/null
wait $overrun
stop 1.5

echo "examples: one command, in full, and failures without the noise" >&2
ip -n $ns route add 10.1.0.0/24 dev lo 2>/dev/null || true
run() {         # CMD... in the foreground: nlbpf ends when the command does
    local file=$1; shift
    echo "\$ sudo nlbpf $*" > "$out/$file"
    "$nlbpf" "$@" >> "$out/$file" 2>&1 || echo "(exit status $?)" >> "$out/$file"
}
run trace-cmd.txt trace -- ip -n $ns route get 10.1.0.1
run trace-verbose.txt trace -v -- ip -n $ns route get 10.1.0.1
five_links='for i in 1 2 3 4 5; do ip -n demo link show lo >/dev/null; done
ip -n demo route del 198.51.100.0/24 via 127.0.0.1'
run errors-fold.txt errors -- sh -c "$five_links"
run errors-ignore.txt errors --ignore RTM_NEWLINK:ENODEV -- sh -c "$five_links"

echo "examples: who interrupted a dump (Go netlink dumping links while ip churns veths)" >&2
bash "$root/tests/clients/build.sh"
ip -n $ns -batch <(for i in $(seq 0 59); do echo "link add st$i type veth peer name su$i"; done)
start errors-intr.txt errors --netns $ns
( for i in $(seq 1 400); do ip -n $ns link add sqa$i type veth peer name sqb$i
                            ip -n $ns link del sqa$i; done ) 2>/dev/null &
churn=$!
ip netns exec $ns "$root/tests/clients/bin/linkdump" -n 3000 -until 2 >/dev/null
kill $churn 2>/dev/null || true
wait $churn 2>/dev/null || true
stop 1
ip -n $ns -batch <(for i in $(seq 0 59); do echo "link del st$i"; done)

echo "examples: slow (400 bridges deleted in one request)" >&2
bridges() {
    ip -n $ns -batch <(for i in $(seq 0 399); do echo "link add nlb$i group 7 type bridge"; done)
}
bridges
start slow.txt slow --threshold 200ms
ip -n $ns link del group 7 &
holder=$!
sleep 0.15
ip -n $ns link set lo mtu 65536 &
waiter=$!
sleep 0.15
ip -n $ns link show lo >/dev/null &
reader=$!
wait $holder $waiter $reader      # (not a bare `wait`: nlbpf is a child too)
stop 1
bridges
start slow-syscall.txt slow --threshold 50ms --hooks syscall
ip -n $ns link del group 7 &
holder=$!
sleep 0.15
ip -n $ns link set lo mtu 65536 &
waiter=$!
wait $holder $waiter
stop 1

echo "examples: slow (a netns torn down by a kworker)" >&2
ip netns add demo-gone
ip -n demo-gone -batch <(for i in $(seq 0 399); do echo "link add nlk$i type bridge"; done)
start slow-kworker.txt slow --threshold 200ms
ip netns del demo-gone
end=$((SECONDS + 3))
while [ $SECONDS -lt $end ]; do ip -n $ns link set lo mtu 65536; done
stop 1

echo "examples: top" >&2
echo "\$ sudo nlbpf top -i 3 -n 1" > "$out/top.txt"
"$nlbpf" top -i 3 -n 1 >> "$out/top.txt" 2>&1 &
bg=$!
sleep 2
ip netns exec $ns "$py" "$root/tests/nlclient.py" getlink 3000 >/dev/null &
loop=$!
failing
ip -n $ns route show >/dev/null
wait "$bg" || true
wait $loop

echo "\$ sudo nlbpf top -i 3 -n 1 --by comm --hooks syscall" > "$out/top-comm.txt"
"$nlbpf" top -i 3 -n 1 --by comm --hooks syscall >> "$out/top-comm.txt" 2>&1 &
bg=$!
sleep 2
ip netns exec $ns "$py" "$root/tests/nlclient.py" getlink 3000 >/dev/null &
loop=$!
for i in $(seq 1 20); do ip -n $ns link show lo >/dev/null; done
failing
wait "$bg" || true
wait $loop

echo "examples: doctor" >&2
echo "\$ sudo nlbpf doctor" > "$out/doctor.txt"
"$nlbpf" doctor >> "$out/doctor.txt" 2>&1 || true

echo "examples: record and read" >&2
rm -f /tmp/demo.pcapng
start record.txt record -w /tmp/demo.pcapng --netns $ns
ip -n $ns route add 10.2.0.0/24 dev lo
ip -n $ns route get 10.2.0.1 >/dev/null
ip -n $ns route del 10.2.0.0/24 dev lo
ip -n $ns route del 198.51.100.0/24 2>/dev/null || true
ip -n $ns route add 10.9.0.1/24 dev lo 2>/dev/null || true
stop
chmod 644 /tmp/demo.pcapng
for view in "read /tmp/demo.pcapng --view errors" "top -r /tmp/demo.pcapng"; do
    echo "\$ nlbpf $view" >> "$out/read.txt"
    runuser -u nobody -- "$nlbpf" $view >> "$out/read.txt" 2>&1 || true
done
if command -v tshark >/dev/null; then
    echo "\$ tshark -r /tmp/demo.pcapng -T fields -e frame.number -e netlink-route.nltype -e netlink.hdr_seq -e frame.comment" > "$out/tshark.txt"
    tshark -r /tmp/demo.pcapng -T fields -e frame.number -e netlink-route.nltype \
        -e netlink.hdr_seq -e frame.comment >> "$out/tshark.txt" 2>&1 || true
fi

echo "examples: a burst (150k route adds and 150k deletes in 5 s)" >&2
echo "\$ sudo nlbpf trace --json --netns $ns > burst.jsonl" > "$out/burst.txt"
"$nlbpf" trace --json --netns $ns > /tmp/burst.jsonl 2>> "$out/burst.txt" &
bg=$!
for _ in $(seq 1 300); do grep -q "Tracing netlink" "$out/burst.txt" && break; sleep 0.1; done
ip netns exec $ns "$py" "$root/bench/nlload.py" paced 200000 5 route >/dev/null
# the output catches up, then Ctrl-C
for _ in $(seq 1 600); do
    grep -q "caught up" "$out/burst.txt" && break
    grep -q "behind the traffic" "$out/burst.txt" || { sleep 2; break; }
    sleep 0.5
done
stop 1
echo "\$ wc -l < burst.jsonl" >> "$out/burst.txt"
wc -l < /tmp/burst.jsonl >> "$out/burst.txt"
rm -f /tmp/burst.jsonl
echo "examples: in $out" >&2
