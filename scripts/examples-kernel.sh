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

# who interrupted a dump: the kernel itself, tearing down netns whose veth peers live
# in ours, while a Go program dumps our links (tests/clients, built on the host)
ip -n $ns -batch <(for i in $(seq 0 59); do echo "link add st$i type veth peer name su$i"; done)
for i in $(seq 0 7); do
    ip netns add gone$i
    ip -n $ns link add vk$i type veth peer name vo$i netns gone$i
done
start errors.txt errors --netns $ns
ip netns exec $ns tests/clients/bin/linkdump -n 100000 -until 1000 >/dev/null &
dumper=$!
for i in $(seq 0 7); do ip netns del gone$i; sleep 1; done
sleep 2
kill $dumper
stop

for f in trace.txt slow.txt errors.txt; do
    cat "$out/$f"
    echo
done
ip netns del $ns
