/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_ARCH_X86_HPP
#define XLOSS_DETAIL_KERNELS_ARCH_X86_HPP

// The kernels' hooks (../arch.hpp) on x86, SSE2 to AVX-512F: the NaN-skipping max in one
// instruction, the register barrier of an empty asm, and the exp taken per lane where xsimd's
// rounding trick does not survive -ffast-math. Included by ../arch.hpp only.

#include <cmath>
#include <type_traits>

#include <immintrin.h>

#include "../arch.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
#if !(defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
            // x86's max returns its second operand where either is NaN: one instruction. Not under
            // -ffinite-math-only, which lets the compiler swap the operands.
            XLOSS_INLINE __m128 x86_max(__m128 a, __m128 b) noexcept
            {
                return _mm_max_ps(a, b);
            }

            XLOSS_INLINE __m128d x86_max(__m128d a, __m128d b) noexcept
            {
                return _mm_max_pd(a, b);
            }
#if defined(__AVX__)
            XLOSS_INLINE __m256 x86_max(__m256 a, __m256 b) noexcept
            {
                return _mm256_max_ps(a, b);
            }

            XLOSS_INLINE __m256d x86_max(__m256d a, __m256d b) noexcept
            {
                return _mm256_max_pd(a, b);
            }
#endif
#if defined(__AVX512F__)
            XLOSS_INLINE __m512 x86_max(__m512 a, __m512 b) noexcept
            {
                return _mm512_max_ps(a, b);
            }

            XLOSS_INLINE __m512d x86_max(__m512d a, __m512d b) noexcept
            {
                return _mm512_max_pd(a, b);
            }
#endif

            template <class T, class A>
            XLOSS_INLINE xsimd::batch<T, A> max_skip_nan(const xsimd::batch<T, A>& m,
                                                         const xsimd::batch<T, A>& v) noexcept
            {
                using R = typename xsimd::batch<T, A>::register_type;
                return x86_max(static_cast<R>(v), static_cast<R>(m));
            }
#endif

#if defined(__GNUC__)
            template <class A>
            struct opaque_barrier<xsimd::batch<float, A>> : std::true_type
            {
            };

            /// v in a register the optimiser cannot see into ("+v": any SSE or AVX register).
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> opaque(const xsimd::batch<float, A>& v) noexcept
            {
                typename xsimd::batch<float, A>::register_type r = v;
                __asm__("" : "+v"(r));
                return r;
            }
#endif

#if defined(__FAST_MATH__) && !defined(__SSE4_1__)
            // Without SSE4.1, xsimd rounds with (x + 2^23) - 2^23, which -ffast-math lets the compiler
            // fold to x (clang does: a distillation loss off by 26 times).
            template <class T, class A>
            struct exp_per_lane<xsimd::batch<T, A>> : std::true_type
            {
            };
#endif

        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
