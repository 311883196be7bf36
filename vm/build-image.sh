#!/usr/bin/env bash
# Build (or reuse) the Debian bookworm guest image for the kernel-probe tests.
#
#   sudo vm/build-image.sh [--force]
#
# Prints the cache entry's directory on stdout (logs go to stderr). It holds
# rootfs.ext4.zst, vmlinuz, initrd.img and info.txt. The entry is keyed by a
# hash of this script, scripts/setup.sh, pyproject.toml's dependencies and the
# guest kernel package, so a rebuild happens only when one of those changes.
#
# The rootfs is provisioned by the project's own scripts/setup.sh, run in the
# chroot. The project's code is NOT kept in the image: vm/run-tests.sh passes
# the current checkout in at every run.
#
# Env: NLBPF_VM_CACHE (default /var/cache/nlbpf-vm), NLBPF_VM_KEEP (entries
# kept, default 2).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${NLBPF_VM_CACHE:-/var/cache/nlbpf-vm}
keep=${NLBPF_VM_KEEP:-2}
force=0
for a in "$@"; do
    case "$a" in
        --force) force=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "build-image.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

say() { echo "vm-build: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "build-image.sh: must run as root (apt, mmdebstrap, chroot)" >&2; exit 1; }

# Paths inside the guest; vm/guest.sh relies on the same ones.
GUEST_SRC=/opt/nlbpf
GUEST_VENV=/opt/nlbpf-venv
GUEST_STUB=/sbin/nlbpf-vm-init

# --- host tools --------------------------------------------------------------
# linux-image-cloud-amd64 is installed on the host only for its vmlinuz,
# initrd and modules: that is the guest's kernel.
export DEBIAN_FRONTEND=noninteractive
need=()
for p in qemu-system-x86 mmdebstrap linux-image-cloud-amd64 zstd e2fsprogs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing host packages: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# The metapackage depends on exactly one linux-image-<release>; its release
# is the guest kernel (and names the headers package in bookworm-security).
kpkg=$(dpkg-query -W -f='${Depends}' linux-image-cloud-amd64 | grep -o 'linux-image-[^ ,]*-cloud-amd64' | head -n1)
release=${kpkg#linux-image-}
kver=$(dpkg-query -W -f='${Version}' "$kpkg")
for f in "/boot/vmlinuz-$release" "/boot/initrd.img-$release" "/lib/modules/$release/modules.dep"; do
    [ -e "$f" ] || { echo "build-image.sh: $f is missing (reinstall $kpkg)" >&2; exit 1; }
done

# --- cache key ---------------------------------------------------------------
# Only pyproject's dependency tables matter for the image; a version bump or a
# new package in the checkout does not need a rebuild.
deps=$(/usr/bin/python3 - "$repo/pyproject.toml" <<'EOF' 2>/dev/null || cat "$repo/pyproject.toml"
import json, sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
p = d.get("project", {})
print(json.dumps([d.get("build-system"), p.get("dependencies"),
                  p.get("optional-dependencies"), p.get("requires-python")], sort_keys=True))
EOF
)
key=$( { cat "$0" "$repo/scripts/setup.sh"; echo "$deps"; echo "$kpkg $kver"; } | sha256sum | cut -c1-16)
entry=$cache/$key

if [ $force -eq 0 ] && [ -e "$entry/.complete" ]; then
    say "reusing $entry"
    touch "$entry"
    echo "$entry"
    exit 0
fi

mkdir -p "$cache"
# One build at a time; a second caller waits, then finds the entry done.
exec 9>"$cache/.lock"
if ! flock -n 9; then
    say "another build holds $cache/.lock; waiting"
    flock 9
fi
if [ $force -eq 0 ] && [ -e "$entry/.complete" ]; then
    say "reusing $entry (built meanwhile)"
    echo "$entry"
    exit 0
fi

remove_build_dir() {
    # mmdebstrap unmounts on its own; this is for a kill at the wrong moment.
    # Never rm -rf across a live /dev or /proc bind mount.
    { grep -o " $1/root[^ ]*" /proc/self/mounts || true; } | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$1" || true
}
# Left by a build that was killed outright; we hold the lock, so none runs.
for stale in "$cache"/build.*; do
    [ -d "$stale" ] && remove_build_dir "$stale"
done

work=$(mktemp -d "$cache/build.XXXXXX")
cleanup() { remove_build_dir "$work"; }
mmpid=
interrupted() {
    # mmdebstrap finishes the running hook, then unmounts and exits: wait.
    if [ -n "$mmpid" ]; then
        kill -TERM "$mmpid" 2>/dev/null || true
        wait "$mmpid" || true
    fi
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

say "building image $key for kernel $release ($kver); log: $work/build.log"
t0=$(date +%s)

# The checkout setup.sh installs from; removed again before the image is made.
mkdir -p "$work/src"
tar -C "$repo" -cf - --exclude-vcs --exclude=./.venv --exclude=./vm/results --exclude=./vm/cache \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.hypothesis \
    --exclude=./build --exclude=./dist . | tar -C "$work/src" -xf -

# The guest's init (init=): minimal, so that the real guest logic can live in
# the checkout (vm/guest.sh) and change without an image rebuild.
cat >"$work/stub" <<EOF
#!/bin/sh
# nlbpf VM: mount the basics, unpack the run payload (/dev/vdb), hand over.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# The initrd normally moved these over already.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
rm -rf $GUEST_SRC /opt/vmrun.env
if tar -xf /dev/vdb -C /opt && [ -x $GUEST_SRC/vm/guest.sh ]; then
    exec /bin/bash $GUEST_SRC/vm/guest.sh
fi
echo "VMTEST: ERROR could not unpack the payload disk /dev/vdb"
sync
echo o >/proc/sysrq-trigger
sleep 60
EOF

# pip in the chroot trusts what the host's pip trusts (a site may intercept
# TLS with its own CA); only during the build, the image does not keep it.
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
pip_cert=/etc/ssl/certs/ca-certificates.crt
hooks=(--customize-hook="mkdir -p \"\$1$GUEST_SRC\""
       --customize-hook="sync-in '$work/src' $GUEST_SRC")
if [ -r "$ca" ]; then
    hooks+=(--customize-hook="upload '$ca' /etc/nlbpf-build-ca.crt")
    pip_cert=/etc/nlbpf-build-ca.crt
fi
hooks+=(
    # The project's own setup, as a developer would run it, minus tracefs.
    --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        PIP_CERT=$pip_cert PIP_DISABLE_PIP_VERSION_CHECK=1 \
        $GUEST_SRC/scripts/setup.sh --test --kernel $release --no-tracefs --venv $GUEST_VENV"
    --customize-hook="rm -f \"\$1/etc/nlbpf-build-ca.crt\""
    # nlmon.ko and the rest of the guest kernel's modules.
    --customize-hook="mkdir -p \"\$1/lib/modules/$release\" && cp -a /lib/modules/$release/. \"\$1/lib/modules/$release/\""
    --customize-hook="upload '$work/stub' $GUEST_STUB"
    --customize-hook="chmod 755 \"\$1$GUEST_STUB\""
    # What the venv's editable install was made from (vm/guest.sh compares).
    --customize-hook="sha256sum <\"\$1$GUEST_SRC/pyproject.toml\" >\"\$1$GUEST_VENV/.nlbpf-pyproject.sha256\""
    --customize-hook="rm -rf \"\$1$GUEST_SRC\" \"\$1/root/.cache\" && echo nlbpf-vm >\"\$1/etc/hostname\""
)

# No mirror given: mmdebstrap uses Debian's default one and, for a stable
# codename, adds bookworm-updates and bookworm-security (where the matching
# linux-headers-<release> lives). setup.sh installs the rest.
mmdebstrap --variant=apt --mode=root --format=directory --include=ca-certificates,tcpdump \
    "${hooks[@]}" bookworm "$work/root" >"$work/build.log" 2>&1 &
mmpid=$!   # in the background so that a signal reaches the trap at once
if ! wait "$mmpid"; then
    cp "$work/build.log" "$cache/failed-build.log"
    tail -n 40 "$work/build.log" >&2
    echo "build-image.sh: mmdebstrap failed; log kept in $cache/failed-build.log" >&2
    exit 1
fi
mmpid=
t1=$(date +%s)

# Headroom for what tests write outside tmpfs (/var, /root).
mb=$(( $(du -sm "$work/root" | cut -f1) + 768 ))
truncate -s "${mb}M" "$work/rootfs.ext4"
mkfs.ext4 -q -L nlbpf-root -d "$work/root" "$work/rootfs.ext4" >&2
zstd -q -T0 -3 --rm "$work/rootfs.ext4" -o "$work/rootfs.ext4.zst"
t2=$(date +%s)

mkdir -p "$work/entry"
mv "$work/rootfs.ext4.zst" "$work/entry/"
cp "/boot/vmlinuz-$release" "$work/entry/vmlinuz"
cp "/boot/initrd.img-$release" "$work/entry/initrd.img"
cp "$work/build.log" "$work/entry/build.log"
cat >"$work/entry/info.txt" <<EOF
key=$key
release=$release
kernel_package=$kpkg $kver
image_mb=$mb
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
rootfs_s=$((t1 - t0))
image_s=$((t2 - t1))
EOF
touch "$work/entry/.complete"
rm -rf --one-file-system "$entry"
mv "$work/entry" "$entry"
say "built $entry in $((t2 - t0)) s (rootfs $((t1 - t0)) s, ext4+zstd $((t2 - t1)) s)"

# Keep the newest $keep entries.
{ ls -1dt "$cache"/*/ 2>/dev/null || true; } | { grep -v '/build\.' || true; } |
    tail -n +"$((keep + 1))" | while read -r old; do
        say "pruning old entry $old"
        rm -rf --one-file-system "$old"
    done
echo "$entry"
