#!/usr/bin/env bash
# Build the test clients written in Go against Debian's Go netlink library
# (golang-github-vishvananda-netlink-dev), offline, into tests/clients/bin.
# The VM gets the binaries with the tree (vm/run-tests.sh runs this first): its
# image has no Go toolchain, and a static binary runs there as it is.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v go >/dev/null || { echo "build.sh: no go (apt install golang-go)" >&2; exit 1; }
[ -d /usr/share/gocode/src/github.com/vishvananda/netlink ] || {
    echo "build.sh: no Go netlink library (apt install golang-github-vishvananda-netlink-dev)" >&2
    exit 1; }
mkdir -p "$here/bin"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/nlbpf-go"
for src in "$here"/*.go; do
    bin="$here/bin/$(basename "$src" .go)"
    [ "$bin" -nt "$src" ] && continue
    GO111MODULE=off GOPATH="$cache/gopath:/usr/share/gocode" GOCACHE="$cache/build" \
        CGO_ENABLED=0 GOFLAGS= go build -o "$bin" "$src"
done
