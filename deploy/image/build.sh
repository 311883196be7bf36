#!/usr/bin/env bash
# Build nlbpf's container image from Debian packages: no base image, no registry.
#
#   sudo deploy/image/build.sh [--tag NAME] [--oci FILE] [--suite bookworm]
#
# mmdebstrap makes a Debian root with nlbpf installed by the project's own
# scripts/setup.sh (bcc from python3-bpfcc, Debian's generic kernel headers as the
# fallback for nodes whose headers are not mounted, the venv in /opt/nlbpf/.venv);
# `podman import` turns it into an image whose entrypoint is `nlbpf` and whose
# command is `serve`. --oci also writes an OCI archive (for `skopeo copy
# oci-archive:FILE docker://your.registry/nlbpf:TAG`).
#
# Run it (as the DaemonSet in deploy/kubernetes/ does):
#   podman run --rm --privileged --pid=host --network=host \
#       -v /sys/kernel:/sys/kernel -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#       -v /run/netns:/run/netns:ro -v /lib/modules:/lib/modules:ro -v /usr/src:/usr/src:ro \
#       localhost/nlbpf:VERSION            # serve on :9434; or: ... localhost/nlbpf errors
#
# Podman's settings (storage driver, runtime) come from its own configuration
# (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), as for any podman command.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)
tag="localhost/nlbpf:$version"
oci=
suite=bookworm
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag=${2:?--tag needs a name}; shift ;;
        --oci) oci=${2:?--oci needs a file}; shift ;;
        --suite) suite=${2:?--suite needs a Debian codename}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "image: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "build.sh: must run as root (mmdebstrap, podman import)" >&2; exit 1; }
for tool in mmdebstrap podman; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool is missing (apt-get install mmdebstrap podman)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/nlbpf-image.XXXXXX)
cleanup() {
    # mmdebstrap unmounts on its own; this is for a kill at the wrong moment
    { grep -o " $work/[^ ]*" /proc/self/mounts || true; } | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# the checkout, as setup.sh installs it (no venv, caches or VM files)
mkdir -p "$work/src"
tar -C "$repo" -cf - --exclude-vcs --exclude=./.venv --exclude=./vm/results \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.hypothesis \
    --exclude=./build --exclude=./dist . | tar -C "$work/src" -xf -

# pip in the chroot trusts what the host trusts (a site may intercept TLS with its
# own CA); only while building: the image does not keep it
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
pip_cert=/etc/ssl/certs/ca-certificates.crt
hooks=(--customize-hook='mkdir -p "$1/opt/nlbpf"'
       --customize-hook="sync-in '$work/src' /opt/nlbpf")
if [ -r "$ca" ]; then
    hooks+=(--customize-hook="upload '$ca' /etc/nlbpf-build-ca.crt")
    pip_cert=/etc/nlbpf-build-ca.crt
fi
hooks+=(
    # the project's setup: bcc, Debian's generic headers (merged for bcc), the venv
    --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 PIP_CERT=$pip_cert PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
        /opt/nlbpf/scripts/setup.sh --no-tracefs --venv /opt/nlbpf/.venv"
    --customize-hook='rm -f "$1/etc/nlbpf-build-ca.crt"'
    # what an image does not need: apt's lists and archives, docs, tests, benchmarks
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/root/.cache \
        "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/opt/nlbpf/tests "$1"/opt/nlbpf/bench \
        "$1"/opt/nlbpf/vm'
)

say "building $tag from Debian $suite (log: $work/build.log)"
t0=$(date +%s)
if ! mmdebstrap --variant=apt --mode=root --format=tar --include=ca-certificates \
        "${hooks[@]}" "$suite" "$work/rootfs.tar" >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    echo "build.sh: mmdebstrap failed" >&2
    exit 1
fi
t1=$(date +%s)

podman import \
    --change 'ENTRYPOINT ["/opt/nlbpf/.venv/bin/nlbpf"]' \
    --change 'CMD ["serve"]' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'EXPOSE 9434' \
    --change "LABEL org.opencontainers.image.title=nlbpf org.opencontainers.image.version=$version" \
    --message "nlbpf $version from Debian $suite" \
    "$work/rootfs.tar" "$tag" >/dev/null
if [ -n "$oci" ]; then
    podman save --format oci-archive -o "$oci" "$tag"
    say "wrote $oci"
fi
size=$(podman image inspect --format '{{.Size}}' "$tag")
say "built $tag: $((size / 1024 / 1024)) MiB in $(( $(date +%s) - t0 )) s (root filesystem $((t1 - t0)) s)"
echo "$tag"
