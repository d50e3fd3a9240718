#!/usr/bin/env bash
# Installs the Debian packages xloss needs for a purpose, when they are missing. The names are
# those of Debian 12, 13 and sid alike.
#   scripts/install-deps.sh demo    what the quick start needs: the README's install step (compiler,
#                                   CMake, xtensor, xsimd, xtl)
#   scripts/install-deps.sh build   compiler, CMake, xtensor, xsimd, Catch2, OpenBLAS (the fused linear
#                                   losses), pkgconf (the pkg-config test), Open MPI (for its example),
#                                   qemu-user (runs a test on a CPU model without AVX)
#   scripts/install-deps.sh torch   build + libtorch (xloss::torch and its tests against libtorch)
#   scripts/install-deps.sh bench   build + Google Benchmark, libtorch, matplotlib
#   scripts/install-deps.sh torch-bench  what the benchmarks alone need, with libtorch (the Debian 13
#                                   chroot of `make bench`'s second libtorch baseline)
#   scripts/install-deps.sh golden  python3-torch, to regenerate the golden values
#   scripts/install-deps.sh docs    Doxygen and Python, for the API reference (make docs)
#   scripts/install-deps.sh fuzz    clang and its libFuzzer runtime, with CMake and the headers
#   scripts/install-deps.sh clang   clang and its OpenMP runtime, to build the suite with clang
#   scripts/install-deps.sh tidy    clang-tidy and libomp-dev (omp.h for clang), with the build's headers
#   scripts/install-deps.sh chroot  debootstrap, to test other Debian releases in a chroot
#   scripts/install-deps.sh valgrind  valgrind, for the memcheck run of the examples
#   scripts/install-deps.sh --list <purpose>  prints the purpose's packages, installs nothing
set -euo pipefail

list_only=0
if [ "${1:-}" = --list ]; then
    list_only=1
    shift
fi

demo=(g++ make cmake libxtensor-dev libxsimd-dev xtl-dev)
build=("${demo[@]}" catch2 libopenblas-dev pkgconf libopenmpi-dev openmpi-bin qemu-user)
case "${1:-build}" in
    demo) wanted=("${demo[@]}") ;;
    build) wanted=("${build[@]}") ;;
    torch) wanted=("${build[@]}" libtorch-dev) ;;
    bench) wanted=("${build[@]}" libbenchmark-dev libtorch-dev python3-matplotlib) ;;
    torch-bench) wanted=(g++ make cmake libxtensor-dev libxsimd-dev xtl-dev libbenchmark-dev libtorch-dev) ;;
    golden) wanted=(python3-torch) ;;
    docs) wanted=(doxygen python3) ;;
    fuzz) wanted=("${demo[@]}" clang libclang-rt-dev libomp-dev) ;;
    clang) wanted=("${build[@]}" clang libomp-dev) ;;
    tidy) wanted=("${build[@]}" clang-tidy libomp-dev) ;;
    chroot) wanted=(debootstrap) ;;
    valgrind) wanted=(valgrind) ;;
    *) echo "usage: $0 [--list] [demo|build|torch|bench|torch-bench|golden|docs|fuzz|clang|tidy|chroot|valgrind]" >&2; exit 2 ;;
esac

if [ "$list_only" = 1 ]; then
    echo "${wanted[@]}"
    exit 0
fi

missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "xloss: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "xloss: run as root, or install these packages: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
