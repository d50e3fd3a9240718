/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_SIMD_HPP
#define XLOSS_DETAIL_KERNELS_SIMD_HPP

// A uniform view of xsimd batches and plain scalars, so that every kernel is
// written once and runs either on batches (the SIMD path) or on scalars (the
// scalar path, used when xsimd offers no instruction set).

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../../compat.hpp"
#include "../../xloss_config.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// A "batch" of one scalar: the scalar path.
            template <class B>
            struct batch_traits
            {
                using value_type = B;
                static constexpr std::size_t size = 1;

                static B load(const value_type* p) noexcept
                {
                    return *p;
                }

                static void store(value_type* p, const B& v) noexcept
                {
                    *p = v;
                }

                static value_type hsum(const B& v) noexcept
                {
                    return v;
                }
            };

#if XLOSS_USE_SIMD
            template <class T, class A>
            struct batch_traits<xsimd::batch<T, A>>
            {
                using value_type = T;
                static constexpr std::size_t size = xsimd::batch<T, A>::size;

                static xsimd::batch<T, A> load(const T* p) noexcept
                {
                    return xsimd::batch<T, A>::load_unaligned(p);
                }

                static void store(T* p, const xsimd::batch<T, A>& v) noexcept
                {
                    v.store_unaligned(p);
                }

                static T hsum(const xsimd::batch<T, A>& v) noexcept
                {
                    return compat::reduce_add(v);
                }
            };

            /// The batch type the library's kernels use for T.
            template <class T>
            using default_batch = xsimd::batch<T>;
#else
            template <class T>
            using default_batch = T;
#endif

            template <class B>
            using value_type_t = typename batch_traits<B>::value_type;

            /// xsimd 8 has no scalar select; this is it.
            template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
            inline T select(bool cond, T a, T b) noexcept
            {
                return cond ? a : b;
            }

            /// The larger of two scalars (xsimd::max for batches).
            template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
            inline T max(T a, T b) noexcept
            {
                return a < b ? b : a;
            }

            /// The smaller of two scalars (xsimd::min for batches).
            template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
            inline T min(T a, T b) noexcept
            {
                return b < a ? b : a;
            }

            /// a * b - c, rounded once where the target has a fused multiply-add and twice where it
            /// has none, but alike at every call: a product the compiler may contract into one sum
            /// and not into another (GCC's default -ffp-contract=fast) would round two equal
            /// computations apart.
            template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
            XLOSS_INLINE T mul_sub(T a, T b, T c) noexcept
            {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
                return std::fma(a, b, -c);
#else
                return a * b - c;
#endif
            }

#if XLOSS_USE_SIMD
            template <class T, class A>
            XLOSS_INLINE xsimd::batch<T, A> mul_sub(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b,
                                                    const xsimd::batch<T, A>& c) noexcept
            {
                return compat::fma(a, b, -c);
            }
#endif

            // Scalars take these; batches find xsimd's abs, exp, log, tanh, max, min and select by argument-dependent
            // lookup (xsimd 13 and later also have scalar overloads, which a using-declaration would make
            // ambiguous with detail::select and detail::max).
            using std::abs;
            using std::exp;
            using std::log;
            using std::tanh;
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
