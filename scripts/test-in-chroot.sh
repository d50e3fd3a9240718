#!/usr/bin/env bash
# Tests xloss on another Debian release the way a new user there has it: a fresh
# `debootstrap --variant=minbase` chroot from Debian's archive, only git and make added, a clone
# of this repository (its committed HEAD) inside, then exactly the README's `make demo` and
# `make test` (in the compiler's default standard; the SIMD suite); `make test` again for each further C++
# standard given, without the suite (the Makefile's SECOND_STANDARD_FLAGS).
#   scripts/test-in-chroot.sh trixie 20    Debian 13: g++ 14's C++17, then C++20
#   scripts/test-in-chroot.sh sid          Debian sid: C++20 (xtensor 0.27 requires it)
# Needs root (debootstrap, mount, chroot). The chroot lives in build-chroot/<release> and is
# removed afterwards, mounts included, whatever happens (scripts/chroot-common.sh).
#   scripts/test-in-chroot.sh --prepare trixie   only the base system and the packages' download
#                                                (network-bound; CI runs it beside other steps)
set -euo pipefail
start=$SECONDS

prepare_only=0
if [ "${1:-}" = --prepare ]; then
    prepare_only=1
    shift
fi
release=${1:?usage: $0 [--prepare] <release> [C++ standard...]}
shift
standards=("$@")
repo=$(cd "$(dirname "$0")/.." && pwd)
root="$repo/build-chroot/$release"
source "$repo/scripts/chroot-common.sh"

if [ "$prepare_only" = 1 ]; then
    trap unmount_all EXIT
    chroot_prepare
    exit 0
fi
chroot_create
echo "== $release: make demo"
in_chroot "cd /root/xloss && make demo"
echo "== $release: make test ($(in_chroot 'g++ --version | head -n 1'))"
# The SIMD suite (the scalar kernels' suite runs on the host's make test, CI time).
in_chroot "cd /root/xloss && make test CMAKE_FLAGS='-DXLOSS_TEST_SCALAR=OFF -DXLOSS_TEST_UNITY_BATCH=8'"
for standard in "${standards[@]}"; do
    echo "== $release: make test in C++$standard"
    in_chroot "cd /root/xloss && make test BUILD=build-cxx$standard CMAKE_FLAGS='-DCMAKE_CXX_STANDARD=$standard -DXLOSS_TEST_SUITE=OFF'"
done
echo "== $release: passed in $((SECONDS - start)) s"
