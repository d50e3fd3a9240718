// The dispatched function as main.cpp sees it: declared here, defined in
// kl_sum_impl.hpp, and instantiated once per instruction set by kl_sum_<set>.cpp,
// each compiled with that set's flags. main.cpp never sees xloss's kernels, so
// nothing AVX-512 gets compiled into the baseline translation unit.
#ifndef XLOSS_EXAMPLE_KL_SUM_HPP
#define XLOSS_EXAMPLE_KL_SUM_HPP

#include <cstddef>

#include <xsimd/xsimd.hpp>

/// The instruction sets this program carries kernels for, best first.
using kl_sum_archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;

struct kl_sum
{
    template <class Arch>
    double operator()(Arch, const float* input, const float* target, std::size_t n) const noexcept;
};

#define XLOSS_KL_SUM_INSTANCE(ARCH)                                                                                    \
    template double kl_sum::operator()<ARCH>(ARCH, const float*, const float*, std::size_t) const noexcept

extern XLOSS_KL_SUM_INSTANCE(xsimd::avx512bw);
extern XLOSS_KL_SUM_INSTANCE(xsimd::fma3<xsimd::avx2>);
extern XLOSS_KL_SUM_INSTANCE(xsimd::sse2);

#endif
