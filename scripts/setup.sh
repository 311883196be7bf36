#!/usr/bin/env bash
# Install what nlbpf needs on Debian/Ubuntu, then make .venv with nlbpf in it.
#
#   sudo scripts/setup.sh            runtime: bcc, kernel headers, iproute2, tracefs, .venv
#   sudo scripts/setup.sh --test     also what the test suite needs (tshark, strace, pytest)
#   sudo scripts/setup.sh --fleet    also Prometheus, promtool, mmdebstrap and podman
#                                    (serve's and the container image's tests)
#   sudo scripts/setup.sh --go       also Go and Debian's Go netlink library, and
#                                    builds the Go test clients (tests/clients)
#
# Options:
#   --kernel RELEASE   headers for this kernel instead of $(uname -r) (used when
#                      building the VM image in a chroot)
#   --no-tracefs       do not try to mount tracefs (chroot, image build)
#   --venv DIR         where to make the venv (default: <checkout>/.venv)
#
# bcc is not on PyPI, so the venv is made from the system Python with
# --system-site-packages: that is how `import bcc` works inside it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
release=$(uname -r)
with_tests=0
with_fleet=0
with_go=0
mount_tracefs=1
venv="$root/.venv"
headers_root=/var/lib/nlbpf/kernel-headers

while [ $# -gt 0 ]; do
    case "$1" in
        --test) with_tests=1 ;;
        --fleet) with_fleet=1 ;;
        --go) with_go=1 ;;
        --kernel) release=${2:?--kernel needs a release}; shift ;;
        --no-tracefs) mount_tracefs=0 ;;
        --venv) venv=${2:?--venv needs a directory}; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "setup: $*" >&2; }
warn() { echo "setup: WARNING: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: must run as root (it installs packages and mounts tracefs)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "setup.sh: needs apt-get (Debian or Ubuntu); install bcc, kernel headers and iproute2 by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated -eq 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# kmod: bcc calls modprobe (kheaders); mount: tracefs and bcc's detach.
apt_install python3 python3-venv python3-pip python3-bpfcc libbpfcc iproute2 kmod mount procps

# --- kernel headers -------------------------------------------------------
# Matching headers let every hook load. Without them, Debian's generic
# headers still let bcc build the portable probes (tracepoints and user
# memory only); struct offsets then come from BTF, never from these headers.
arch=$(dpkg --print-architecture)
if [ -e "/lib/modules/$release/build/include" ]; then
    say "kernel headers for $release are present"
else
    # apt-cache needs the package lists; refresh them once if we have not.
    if [ $apt_updated -eq 0 ]; then apt-get update -qq; apt_updated=1; fi
    if apt-cache show "linux-headers-$release" >/dev/null 2>&1; then
        apt_install "linux-headers-$release"
    else
        warn "no headers package for kernel $release; using Debian's linux-headers-$arch."
        warn "only the portable hooks (syscall tracepoints, extack, lock contention) will load."
        apt_install "linux-headers-$arch"
        # bcc wants one tree; Debian splits it into -common and -$arch.
        ver=$(dpkg-query -W -f='${Depends}' "linux-headers-$arch" | grep -o "linux-headers-[^ ,]*" | head -n1)
        ver=${ver#linux-headers-}
        common=/usr/src/linux-headers-${ver%-"$arch"}-common
        specific=/usr/src/linux-headers-$ver
        merged=$headers_root/$ver
        if [ ! -e "$merged/.complete" ]; then
            rm -rf "$merged"
            mkdir -p "$merged"
            cp -rs "$common/." "$merged/"
            cp -rs --remove-destination "$specific/." "$merged/"
            touch "$merged/.complete"
        fi
        ln -sfn "$merged" "$headers_root/default"
        say "merged headers in $merged (nlbpf uses them as BCC_KERNEL_SOURCE)"
    fi
fi

# --- tracefs ----------------------------------------------------------------
if [ $mount_tracefs -eq 1 ] && [ ! -e /sys/kernel/tracing/events ]; then
    if mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null; then
        say "mounted tracefs on /sys/kernel/tracing"
    else
        warn "could not mount tracefs; tracepoints will not attach"
    fi
fi

# --- test tools -------------------------------------------------------------
if [ $with_tests -eq 1 ]; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt_install tshark strace bpftool
fi
if [ $with_fleet -eq 1 ]; then
    # prometheus: the server and promtool that scrape and check `nlbpf serve`;
    # mmdebstrap, podman and runc (crun cannot run on a hybrid cgroup setup): the
    # container image (deploy/image/build.sh) and its test
    apt_install prometheus mmdebstrap podman runc uidmap
fi
if [ $with_go -eq 1 ]; then
    # the Go netlink library Kubernetes' CNI plugins use, built offline (GO111MODULE=off)
    apt_install golang-go golang-github-vishvananda-netlink-dev
    bash "$root/tests/clients/build.sh"
fi

# --- venv -------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import bcc" 2>/dev/null; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
extra=""
[ $with_tests -eq 1 ] && extra="[test]"
"$venv/bin/pip" install -q --disable-pip-version-check -e "$root$extra"
"$venv/bin/python" -c "import bcc, pyroute2, nlbpf" || { echo "setup.sh: the venv cannot import bcc/pyroute2/nlbpf" >&2; exit 1; }
say "ready: $venv/bin/nlbpf"
