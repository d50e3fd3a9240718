/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_ARCH_HPP
#define XLOSS_DETAIL_KERNELS_ARCH_HPP

// The kernels' instruction-set hooks. Generic kernels call only the names below; this header gives
// their portable definitions and then includes the file of the architecture the translation unit is
// compiled for, which specialises them (as xsimd keeps each instruction set in a file of its own):
//
// | hook                  | portable                          | arch/x86.hpp, arch/x86_avx512.hpp       |
// |-----------------------|-----------------------------------|-----------------------------------------|
// | max_skip_nan(m, v)    | select(is_nan(v), m, max(m, v))   | one max instruction (x86 keeps its      |
// |                       |                                   | second operand where either is NaN)     |
// | masked_lanes<B>       | false: partial batches go through | AVX-512: masked loads and stores        |
// |                       | the stack                         |                                         |
// | opaque_barrier<B>     | false: opaque(v) is v             | GCC/clang: an empty asm holds v         |
// | exp_per_lane<B>       | false: xsimd's exp                | -ffast-math without SSE4.1: the C       |
// |                       |                                   | library's exp per lane                  |
// | log_per_lane<B>       | false: xsimd's log                | clang -ffast-math, double: the C        |
// |                       |                                   | library's log per lane                  |
// | table_log<B>          | false                             | AVX-512DQ: log_normal (a table log of   |
// |                       |                                   | positive normal numbers) and            |
// |                       |                                   | finite_and_normal_or_zero(x, t)         |
// | wide_rows<S>          | false: one element at a time      | F16C (half), AVX2 (bfloat16): rows to   |
// |                       |                                   | and from float, 8 at a time (the same   |
// |                       |                                   | roundings)                              |
//
// The architecture files are included whatever the translation unit's -m flags, on every x86 build:
// the hooks' definitions must agree across translation units built for different instruction sets
// (runtime dispatch); only a translation unit compiled for an instruction set instantiates its code.

#include <type_traits>

#include "../../float16.hpp"
#include "classify.hpp"
#include "simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// max(m, v), m where v is NaN.
            template <class B>
            XLOSS_INLINE B max_skip_nan(const B& m, const B& v) noexcept
            {
                return select(is_nan(v), m, max(m, v));
            }

            /**
             * Whether a partial batch of B loads and stores with a lane mask; a specialisation has
             * `static B load(const T* p, std::size_t count, T pad)` (lanes past `count` are `pad` and
             * are not read) and `static void store(T* p, const B& v, std::size_t count)`.
             */
            template <class B, class = void>
            struct masked_lanes : std::false_type
            {
            };

            /// Whether `opaque(v)` hides v from the optimiser (no algebra of the compiler's reaches
            /// through it); where it does not, it returns v.
            template <class B, class = void>
            struct opaque_barrier : std::false_type
            {
            };

            template <class B>
            XLOSS_INLINE B opaque(const B& v) noexcept
            {
                return v;
            }

            /// Whether xsimd's exp is unsafe under the translation unit's flags, so that exp takes the
            /// C library's per lane.
            template <class B, class = void>
            struct exp_per_lane : std::false_type
            {
            };

            /// Whether xsimd's double log is unsafe under the translation unit's flags, so that log takes
            /// the C library's per lane.
            template <class B, class = void>
            struct log_per_lane : std::false_type
            {
            };

#if XLOSS_USE_SIMD && defined(__FAST_MATH__) && defined(__clang__)
            // clang's -ffast-math build of xsimd 8.1's double log is wrong on AVX2 (log(0.128) gave
            // 0.0247); every instruction set, as xsimd's double log is the same generic code on each.
            template <class A>
            struct log_per_lane<xsimd::batch<double, A>> : std::true_type
            {
            };
#endif

            /// f applied to each lane of x (a batch): the C library's functions where xsimd's are unsafe.
            template <class B, class F>
            inline B per_lane(const B& x, F f) noexcept
            {
                alignas(64) typename B::value_type lanes[B::size];
                x.store_aligned(lanes);
                for (auto& v : lanes)
                {
                    v = f(v);
                }
                return B::load_aligned(lanes);
            }

            /// Whether `log_normal(x)` (a table log of positive, normal, finite x) and
            /// `finite_and_normal_or_zero(x, t)` (every lane of x finite, every lane of t a positive
            /// normal number or a zero) exist for B.
            template <class B, class = void>
            struct table_log : std::false_type
            {
            };

            /**
             * Whether contiguous rows of the storage type S convert to and from float with
             * instructions of their own; a specialisation has `static void widen(const S* src,
             * std::size_t n, float* dst)` and `static void narrow(const float* src, std::size_t n,
             * S* dst)`, which round as S's conversions do.
             */
            template <class S, class = void>
            struct wide_rows : std::false_type
            {
            };

#if XLOSS_USE_SIMD
            /// Enables an overload for the batches that have the table log.
            template <class T, class A>
            using if_table_log = std::enable_if_t<table_log<xsimd::batch<T, A>>::value, int>;
#endif
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#if XLOSS_USE_SIMD && (defined(__x86_64__) || defined(_M_X64))
#include "arch/x86.hpp"
#include "arch/x86_avx512.hpp"
#endif

#endif
