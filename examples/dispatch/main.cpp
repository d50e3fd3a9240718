// Runtime dispatch: this program is compiled for baseline x86-64 (SSE2), yet runs
// xloss's AVX2 or AVX-512 kernel when the CPU has it. Each kernel lives in its own
// translation unit built with its instruction set's flags; xsimd::dispatch checks
// the CPU once and calls the best. Prints what ran and what the dispatch costs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <xloss/compat.hpp>

#include "kl_sum.hpp"

namespace
{
    /// Median time of one call of f, in nanoseconds.
    template <class F>
    double time_ns(F&& f, int calls)
    {
        std::vector<double> samples;
        for (int rep = 0; rep < 15; ++rep)
        {
            const auto start = std::chrono::steady_clock::now();
            for (int i = 0; i < calls; ++i)
            {
                f();
            }
            const std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - start;
            samples.push_back(d.count() / calls);
        }
        std::sort(samples.begin(), samples.end());
        return samples[samples.size() / 2];
    }
}

int main(int argc, char** argv)
{
    // `dispatch --quick`: one timed call each, for slow emulated CPUs (the tests run it under qemu).
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    const int big_calls = quick ? 1 : 20;
    const int small_calls = quick ? 1 : 20000;
    const std::size_t n = std::size_t(1) << 18;
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> u(0.01f, 1.f);
    std::vector<float> x(n), t(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        x[i] = std::log(u(gen));
        t[i] = u(gen);
    }

    const bool has_avx512 = xloss::compat::cpu_has<xsimd::avx512bw>();
    const bool has_avx2 = xloss::compat::cpu_has<xsimd::fma3<xsimd::avx2>>();
    const char* chosen = has_avx512 ? xsimd::avx512bw::name()
                         : has_avx2 ? xsimd::fma3<xsimd::avx2>::name()
                                    : xsimd::sse2::name();
    auto dispatched_sum = xsimd::dispatch<kl_sum_archs>(kl_sum{});
    const kl_sum kernel;

    volatile double sink = 0;
    const double dispatched = dispatched_sum(x.data(), t.data(), n);
    const double baseline = kernel(xsimd::sse2{}, x.data(), t.data(), n);
    const double t_dispatched = time_ns(
        [&]
        {
            sink = dispatched_sum(x.data(), t.data(), n);
        },
        big_calls);
    const double t_baseline = time_ns(
        [&]
        {
            sink = kernel(xsimd::sse2{}, x.data(), t.data(), n);
        },
        big_calls);
    // The price of dispatching: a tiny call, dispatched and direct, on the same kernel.
    const double t_small_dispatched = time_ns(
        [&]
        {
            sink = dispatched_sum(x.data(), t.data(), 64);
        },
        small_calls);
    const double t_small_direct = time_ns(
        [&]
        {
            sink = has_avx512 ? kernel(xsimd::avx512bw{}, x.data(), t.data(), 64)
                   : has_avx2 ? kernel(xsimd::fma3<xsimd::avx2>{}, x.data(), t.data(), 64)
                              : kernel(xsimd::sse2{}, x.data(), t.data(), 64);
        },
        small_calls);
    (void)sink;

    std::printf("built for baseline x86-64; dispatched to %s\n", chosen);
    std::printf("KL sum over %zu elements: %.9g (%s), %.9g (sse2)\n", n, dispatched, chosen, baseline);
    std::printf("time per call: %.0f us (%s) vs %.0f us (sse2): %.1fx\n", t_dispatched / 1e3, chosen, t_baseline / 1e3,
                t_baseline / t_dispatched);
    std::printf("dispatch cost on a 64-element call: %.1f ns dispatched vs %.1f ns direct\n", t_small_dispatched,
                t_small_direct);
    const bool agrees = std::abs(dispatched - baseline) <= 1e-5 * std::abs(baseline);
    std::printf(agrees ? "the kernels agree\n" : "the kernels DISAGREE\n");
    return agrees ? 0 : 1;
}
