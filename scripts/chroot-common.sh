# Sourced by test-in-chroot.sh and bench-torch-chroot.sh: a fresh `debootstrap --variant=minbase`
# chroot of a Debian release, from Debian's archive, with git and make added and a clone of this
# repository (its committed HEAD) in /root/xloss. The caller sets `release`, `root` (the chroot's
# directory) and `repo`, then calls chroot_create (or chroot_prepare alone); the chroot and its mounts are removed on exit,
# whatever happens (XLOSS_KEEP_CHROOT=1 keeps the files). DEBIAN_MIRROR picks the archive
# (default http://deb.debian.org/debian). Needs root.

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

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

in_chroot() {
    chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 /bin/bash -euo pipefail -c "$1"
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: needs root (debootstrap, mount, chroot)" >&2
        exit 1
    fi
}

mount_all() {
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
}

# The base system with git and make, and the Debian packages that the README's `make demo` and
# `make test` install there downloaded into its apt cache, not installed: the network's part of a
# chroot's start, which CI runs beside other work (scripts/test-in-chroot.sh --prepare). Marked
# ready in "$root.prepared"; chroot_create takes a chroot so marked, when it is under 12 hours old.
# The caller unmounts on exit (trap unmount_all EXIT). chroot_packages names install-deps.sh's
# purpose whose packages are fetched (default build).
chroot_prepare() {
    need_root
    "$repo/scripts/install-deps.sh" chroot
    unmount_all
    rm -rf --one-file-system "$root" "$root.prepared"
    mkdir -p "$root"
    echo "== $release: debootstrap --variant=minbase from $mirror"
    local begin=$SECONDS
    debootstrap --variant=minbase "$release" "$root" "$mirror" > "$root.debootstrap.log" 2>&1 ||
        { tail -n 20 "$root.debootstrap.log"; exit 1; }
    echo "== $release: base system in $((SECONDS - begin)) s"
    mount_all
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # The chroot's own apt and dpkg settings (the host's are never touched): the archive may be a
    # snapshot whose sid Release is past its Valid-Until date; and a throw-away system needs no fsync.
    echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99xloss-snapshot"
    echo 'force-unsafe-io' > "$root/etc/dpkg/dpkg.cfg.d/99xloss-unsafe-io"
    in_chroot "apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends git make > /dev/null"
    in_chroot "apt-get install -y -q --download-only --no-install-recommends \
               $("$repo/scripts/install-deps.sh" --list "${chroot_packages:-build}") > /dev/null"
    unmount_all
    touch "$root.prepared"
    echo "== $release: prepared in $((SECONDS - begin)) s"
}

# The chroot for a run (removed on exit): the prepared one, or prepared now; mounted, with a clone of the repository.
chroot_create() {
    need_root
    trap cleanup EXIT
    if [ -n "$(find "$root.prepared" -mmin -720 2>/dev/null)" ]; then
        echo "== $release: the prepared base system"
    else
        chroot_prepare
    fi
    rm -f "$root.prepared"
    mount_all
    mkdir -p "$root/src"
    mount --bind -o ro "$repo" "$root/src"
    in_chroot "git config --global --add safe.directory '*' && git clone -q /src /root/xloss"
    echo "== $release: xloss $(git -C "$repo" rev-parse --short HEAD) cloned"
}
