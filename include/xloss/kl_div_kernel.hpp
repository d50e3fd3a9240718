/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_KERNEL_HPP
#define XLOSS_KL_DIV_KERNEL_HPP

/// @file
/// The KL-divergence sum as a kernel over raw arrays for a chosen instruction set:
/// the building block for runtime dispatch with xsimd::dispatch.

#include <cstddef>

#include "detail/core/expression.hpp"
#include "detail/engine/walk.hpp"
#include "detail/kernels/batch_loops.hpp"
#include "detail/kl_div/ops.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The sum of the KL-divergence terms over contiguous arrays, on the xsimd
         *        architecture `Arch`: what kl_div(..., reduction::sum) computes, for one
         *        instruction set chosen by the caller.
         *
         * A program built for a baseline target compiles this functor once per instruction set
         * (one translation unit each, with that set's flags, instantiating operator()) and lets
         * xsimd::dispatch pick the best one the CPU has at run time; see examples/dispatch.
         * @code
         * auto kl_sum = xsimd::dispatch<xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>>(
         *     xloss::kl_div_sum_kernel{});
         * double loss = kl_sum(input.data(), target.data(), input.size(), false);
         * @endcode
         */
        struct kl_div_sum_kernel
        {
            /// The sum of the n terms, on the kernels of `Arch`.
            template <class Arch, class T>
            double operator()(Arch, const T* input, const T* target, std::size_t n, bool log_target) const noexcept
            {
                using batch = xsimd::batch<T, Arch>;
                return log_target ? sum<batch>(detail::kl_term_log{}, input, target, n)
                                  : sum<batch>(detail::kl_term{}, input, target, n);
            }

        private:

            template <class B, class Op, class T>
            static double sum(Op op, const T* input, const T* target, std::size_t n) noexcept
            {
                detail::pointer_source<T> x{input}, t{target};
                detail::scalar_source<T> g{T(0)};
                return detail::run_partitions<detail::block_sum<B>, T>(
                    n, 1, x, t, g,
                    [&](auto px, auto pt, auto pg, std::size_t m, std::size_t, auto& acc)
                    {
                        acc.add(op, px, pt, pg, m);
                    });
            }
        };
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
