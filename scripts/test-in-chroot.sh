#!/usr/bin/env bash
# Tests xloss on another Debian release the way a new user there has it: a fresh
# `debootstrap --variant=minbase` chroot from Debian's archive, only git and make added, a clone
# of this repository (its committed HEAD) inside, then exactly the README's `make demo` and
# `make test` (in the compiler's default standard; the SIMD suite); `make test` again for each further C++
# standard given, without the suite (the Makefile's SECOND_STANDARD_FLAGS).
#   scripts/test-in-chroot.sh trixie 20    Debian 13: g++ 14's C++17, then C++20
#   scripts/test-in-chroot.sh --torch trixie 20   the same with libtorch installed before make test
#                                          (xloss::torch tested against Debian 13's libtorch)
#   scripts/test-in-chroot.sh sid          Debian sid: C++20 (xtensor 0.27 requires it)
# Needs root (debootstrap, mount, chroot). The chroot lives in build-chroot/<release> and is
# removed afterwards, mounts included, whatever happens (scripts/chroot-common.sh).
#   scripts/test-in-chroot.sh --prepare [--torch] trixie   only the base system and the packages' download
#                                                (network-bound; CI runs it beside other steps)
set -euo pipefail
start=$SECONDS

prepare_only=0
with_torch=0
while [ "${1:-}" = --prepare ] || [ "${1:-}" = --torch ]; do
    [ "$1" = --prepare ] && prepare_only=1
    [ "$1" = --torch ] && with_torch=1
    shift
done
release=${1:?usage: $0 [--prepare] <release> [C++ standard...]}
shift
standards=("$@")
repo=$(cd "$(dirname "$0")/.." && pwd)
root="$repo/build-chroot/$release"
source "$repo/scripts/chroot-common.sh"
if [ "$with_torch" = 1 ]; then
    chroot_packages=torch
fi

if [ "$prepare_only" = 1 ]; then
    trap unmount_all EXIT
    chroot_prepare
    exit 0
fi
chroot_create
echo "== $release: make demo"
in_chroot "cd /root/xloss && make demo"
if [ "$with_torch" = 1 ]; then
    echo "== $release: libtorch, for xloss::torch's tests against it"
    in_chroot "cd /root/xloss && scripts/install-deps.sh torch"
fi
echo "== $release: make test ($(in_chroot 'g++ --version | head -n 1'))"
# The SIMD suite (the scalar kernels' suite runs on the host's make test, CI time).
in_chroot "cd /root/xloss && make test CMAKE_FLAGS='-DXLOSS_TEST_SCALAR=OFF -DXLOSS_TEST_UNITY_BATCH=8'"
for standard in "${standards[@]}"; do
    echo "== $release: make test in C++$standard"
    in_chroot "cd /root/xloss && make test BUILD=build-cxx$standard CMAKE_FLAGS='-DCMAKE_CXX_STANDARD=$standard -DXLOSS_TEST_SUITE=OFF -DXLOSS_TEST_SCALAR=OFF -DXLOSS_TORCH=OFF -DXLOSS_EXAMPLE_TORCH=OFF'"
done
echo "== $release: passed in $((SECONDS - start)) s"
