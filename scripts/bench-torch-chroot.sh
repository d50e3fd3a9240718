#!/usr/bin/env bash
# The second libtorch baseline of `make bench`: Debian 13's libtorch (2.x; Debian 12 has 1.13) in
# a fresh chroot (scripts/chroot-common.sh), the benchmarks built there from this repository's
# committed HEAD and run for their libtorch rows only, on the same machine, each into JSON:
#   scripts/bench-torch-chroot.sh <output directory>
# writes <output directory>/torch2-{kl_div,distill,divergence,cross_entropy}.json. XLOSS_BENCH_KL_FLAGS and
# XLOSS_BENCH_ROW_FLAGS give the benchmark flags of xloss_bench and of the row benchmarks (the
# Makefile passes those of the host's run). Needs root.
set -euo pipefail

out=$(realpath "${1:?usage: $0 <output directory>}")
release=trixie
repo=$(cd "$(dirname "$0")/.." && pwd)
root="$repo/build-chroot/bench-$release"
chroot_packages=torch-bench
start=$SECONDS
source "$repo/scripts/chroot-common.sh"

chroot_create
echo "== $release: libtorch and the benchmarks' build dependencies"
in_chroot "cd /root/xloss && scripts/install-deps.sh torch-bench > /dev/null"
in_chroot "cd /root/xloss && cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DXLOSS_BUILD_TESTS=OFF \
    -DXLOSS_BUILD_EXAMPLES=OFF -DXLOSS_BUILD_BENCHMARKS=ON > /dev/null && cmake --build build-bench -j \$(nproc) > /dev/null"
version=$(in_chroot "dpkg-query -W -f='\${Version}' libtorch-dev" | sed 's/[+~-].*//')
echo "== $release: libtorch $version"
mkdir -p "$out"
for run in "kl_div xloss_bench ${XLOSS_BENCH_KL_FLAGS:-}" "distill xloss_bench_distill ${XLOSS_BENCH_ROW_FLAGS:-}" \
           "divergence xloss_bench_divergence ${XLOSS_BENCH_ROW_FLAGS:-}" \
           "cross_entropy xloss_bench_cross_entropy ${XLOSS_BENCH_ROW_FLAGS:-}"; do
    read -r name binary flags <<< "$run"
    # A warm-up before each benchmark (Google Benchmark 1.8+): libtorch 2.6's first calls in a process
    # ran several times slower in a trial run.
    # The libtorch rows only: the filter after the caller's flags, which may hold one of their own.
    in_chroot "cd /root/xloss && build-bench/benchmarks/$binary $flags --benchmark_filter=torch \
        --benchmark_min_warmup_time=0.2 --benchmark_context=libtorch=$version \
        --benchmark_out=/root/torch2-$name.json --benchmark_out_format=json"
    # Without libtorch rows (CMake found no Torch there) the JSON holds no benchmark: none is kept.
    if grep -q '"run_name": "[^"]*torch' "$root/root/torch2-$name.json"; then
        cp "$root/root/torch2-$name.json" "$out/"
    else
        echo "== $release: no libtorch rows from $binary" >&2
    fi
done
echo "== $release: chroot, build and libtorch rows in $((SECONDS - start)) s"
