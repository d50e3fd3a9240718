#!/usr/bin/env bash
# Tests xloss on another Debian release the way a new user there has it: a fresh
# `debootstrap --variant=minbase` chroot from Debian's archive, only git and make added, a clone
# of this repository (its committed HEAD) inside, then exactly the README's `make demo` and
# `make test` (in the compiler's default standard); `make test` again for each further C++
# standard given.
#   scripts/test-in-chroot.sh trixie 20    Debian 13: g++ 14's C++17, then C++20
#   scripts/test-in-chroot.sh sid          Debian sid: C++20 (xtensor 0.27 requires it)
# Needs root (debootstrap, mount, chroot). The chroot lives in build-chroot/<release> and is
# removed afterwards, mounts included, whatever happens (XLOSS_KEEP_CHROOT=1 keeps the files).
# DEBIAN_MIRROR picks the archive (default http://deb.debian.org/debian).
set -euo pipefail

release=${1:?usage: $0 <release> [C++ standard...]}
shift
standards=("$@")
repo=$(cd "$(dirname "$0")/.." && pwd)
root="$repo/build-chroot/$release"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root (debootstrap, mount, chroot)" >&2
    exit 1
fi
"$repo/scripts/install-deps.sh" chroot

unmount_all() {
    # Innermost first; lazily, so that a process still holding a mount cannot keep it.
    for mount in "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc" "$root/src"; do
        if mountpoint -q "$mount" 2>/dev/null; then
            umount -l "$mount"
        fi
    done
}
cleanup() {
    unmount_all
    if [ "${XLOSS_KEEP_CHROOT:-0}" != 1 ]; then
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT

unmount_all
rm -rf --one-file-system "$root"
mkdir -p "$root"
echo "== $release: debootstrap --variant=minbase from $mirror"
start=$SECONDS
debootstrap --variant=minbase "$release" "$root" "$mirror" > "$repo/build-chroot/$release.debootstrap.log" 2>&1 ||
    { tail -n 20 "$repo/build-chroot/$release.debootstrap.log"; exit 1; }
echo "== $release: base system in $((SECONDS - start)) s"

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mkdir -p "$root/src"
mount --bind -o ro "$repo" "$root/src"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The chroot's own apt and dpkg settings (the host's are never touched): the archive may be a
# snapshot whose sid Release is past its Valid-Until date; and a throw-away system needs no fsync.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99xloss-snapshot"
echo 'force-unsafe-io' > "$root/etc/dpkg/dpkg.cfg.d/99xloss-unsafe-io"

in_chroot() {
    chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 /bin/bash -euo pipefail -c "$1"
}

in_chroot "apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends git make > /dev/null"
in_chroot "git config --global --add safe.directory '*' && git clone -q /src /root/xloss"
echo "== $release: xloss $(git -C "$repo" rev-parse --short HEAD) cloned; make demo"
in_chroot "cd /root/xloss && make demo"
echo "== $release: make test ($(in_chroot 'g++ --version | head -n 1'))"
in_chroot "cd /root/xloss && make test"
for standard in "${standards[@]}"; do
    echo "== $release: make test in C++$standard"
    in_chroot "cd /root/xloss && make test BUILD=build-cxx$standard CMAKE_FLAGS=-DCMAKE_CXX_STANDARD=$standard"
done
echo "== $release: passed in $((SECONDS - start)) s"
