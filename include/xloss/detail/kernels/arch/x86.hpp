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
#include <cstddef>
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

#if defined(__AVX__)
            /// Rows of the 16-bit type S converted `Block::width` elements at a time (`Block::widen(const S*,
            /// float*)`, `Block::narrow(const float*, S*)`), the tail one by one with S's own conversions,
            /// which round alike.
            template <class S, class Block>
            struct rows_by_block : std::true_type
            {
                static void widen(const S* src, std::size_t n, float* dst) noexcept
                {
                    const std::size_t whole = n - n % Block::width;
                    for (std::size_t j = 0; j < whole; j += Block::width)
                    {
                        Block::widen(src + j, dst + j);
                    }
                    for (std::size_t j = whole; j < n; ++j)
                    {
                        dst[j] = static_cast<float>(src[j]);
                    }
                }

                static void narrow(const float* src, std::size_t n, S* dst) noexcept
                {
                    const std::size_t whole = n - n % Block::width;
                    for (std::size_t j = 0; j < whole; j += Block::width)
                    {
                        Block::narrow(src + j, dst + j);
                    }
                    for (std::size_t j = whole; j < n; ++j)
                    {
                        dst[j] = S(src[j]);
                    }
                }
            };

            /// 8 values of 16 bits.
            XLOSS_INLINE __m128i load_eight(const void* p) noexcept
            {
                return _mm_loadu_si128(static_cast<const __m128i*>(p));
            }

            XLOSS_INLINE void store_eight(void* p, __m128i v) noexcept
            {
                _mm_storeu_si128(static_cast<__m128i*>(p), v);
            }
#endif

#if defined(__F16C__)
            // F16C's roundings are float_to_half_bits's (nearest even, NaN quieted with the top of its
            // payload), and MXCSR's flush and denormals-are-zero modes (-ffast-math's) do not touch
            // them: a half subnormal is a normal float.
            struct half_by_eight
            {
                static constexpr std::size_t width = 8;

                static XLOSS_INLINE void widen(const half* src, float* dst) noexcept
                {
                    _mm256_storeu_ps(dst, _mm256_cvtph_ps(load_eight(src)));
                }

                static XLOSS_INLINE void narrow(const float* src, half* dst) noexcept
                {
                    store_eight(dst, _mm256_cvtps_ph(_mm256_loadu_ps(src), _MM_FROUND_TO_NEAREST_INT));
                }
            };

            template <>
            struct wide_rows<half> : rows_by_block<half, half_by_eight>
            {
            };
#endif

#if defined(__AVX2__)
            // bfloat16 is a float's top half: widening is a shift, narrowing rounds off the low half in
            // integers (ties to even, NaN quieted), as float_to_bfloat16_bits does.
            struct bfloat16_by_eight
            {
                static constexpr std::size_t width = 8;

                static XLOSS_INLINE void widen(const bfloat16* src, float* dst) noexcept
                {
                    const __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(load_eight(src)), 16);
                    _mm256_storeu_ps(dst, _mm256_castsi256_ps(u));
                }

                static XLOSS_INLINE void narrow(const float* src, bfloat16* dst) noexcept
                {
                    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src));
                    const __m256i high = _mm256_srli_epi32(u, 16);
                    const __m256i odd = _mm256_and_si256(high, _mm256_set1_epi32(1));
                    const __m256i rounded =
                        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);
                    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                                           _mm256_set1_epi32(0x7f800000));
                    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(high, _mm256_set1_epi32(0x40)), nan);
                    // 32-bit lanes to 16: pack (within 128-bit halves), then gather the halves' low words.
                    store_eight(dst, _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08)));
                }
            };

            template <>
            struct wide_rows<bfloat16> : rows_by_block<bfloat16, bfloat16_by_eight>
            {
            };
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
