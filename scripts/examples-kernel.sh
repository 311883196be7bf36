#!/usr/bin/env bash
# The README's kernel-function-layer examples, made in the test VM (this machine has
# neither fentry nor kprobes):
#
#   sudo vm/run-tests.sh --run 'bash scripts/examples-kernel.sh' --layer-timeout 1500
#
# Prints each example: the command line, then what it printed.
set -uo pipefail
ns=demo
ip netns add $ns
ip -n $ns link set lo up
out=/tmp/examples
mkdir -p $out

start() {       # FILE ARGS...: nlbpf in the background until its Tracing line
    local file=$1; shift
    echo "\$ sudo nlbpf $*" > "$out/$file"
    nlbpf "$@" >> "$out/$file" 2>&1 &
    bg=$!
    until grep -q "Tracing netlink" "$out/$file"; do
        kill -0 $bg 2>/dev/null || break
        sleep 1
    done
}
stop() { sleep "${1:-2}"; kill -INT $bg; wait $bg; }

# who caused a notification: a listener in the netns, a route added
start trace.txt trace --netns $ns
ip netns exec $ns ip monitor route >/dev/null &
monitor=$!
sleep 2
ip -n $ns route add 10.1.0.0/24 dev lo
ip -n $ns link add nlva type veth peer name nlvb
ip -n $ns link set nlva up
ip -n $ns link set nlvb up
sleep 1
ip -n $ns link set nlva down      # the peer's carrier loss comes from the kernel
sleep 3
stop
kill $monitor

# the handler's own time: one request deleting 200 bridges holds rtnl
ip -n $ns -batch <(for i in $(seq 0 199); do echo "link add nlb$i group 7 type bridge"; done)
start slow.txt slow --threshold 50ms
ip -n $ns link del group 7 &
holder=$!
sleep 0.3
ip -n $ns link set lo mtu 65536
wait $holder
stop

for f in trace.txt slow.txt; do
    cat "$out/$f"
    echo
done
ip netns del $ns
