/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_CLASSIFY_HPP
#define XLOSS_DETAIL_KERNELS_CLASSIFY_HPP

// Special values of batches told by their bits, as float_bits.hpp tells them of scalars (which
// this header brings too): under -ffast-math compilers fold `x != x` and `std::isnan(x)`, not integer
// compares. Every test of NaN or of an infinity in the library goes through these.

#include <limits>
#include <type_traits>

#include "float_bits.hpp"
#include "simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
#if XLOSS_USE_SIMD
            // Batches: masks of the batch's own type, from integer compares of its bits.

            template <class T, class A>
            inline xsimd::batch_bool<T, A> both(const xsimd::batch_bool<T, A>& a,
                                                const xsimd::batch_bool<T, A>& b) noexcept
            {
                return a & b;
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> either(const xsimd::batch_bool<T, A>& a,
                                                  const xsimd::batch_bool<T, A>& b) noexcept
            {
                return a | b;
            }

            template <class T, class A>
            inline auto bits_of(const xsimd::batch<T, A>& v) noexcept
            {
                return compat::bitwise_cast<typename float_bits<T>::type>(v);
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_nan(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                return compat::mask_cast<T>((bits_of(v) & I(float_bits<T>::abs_mask)) > I(float_bits<T>::inf));
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_inf(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                return compat::mask_cast<T>((bits_of(v) & I(float_bits<T>::abs_mask)) == I(float_bits<T>::inf));
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_finite(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                return compat::mask_cast<T>((bits_of(v) & I(float_bits<T>::abs_mask)) < I(float_bits<T>::inf));
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_neg_inf(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                return compat::mask_cast<T>(bits_of(v) == I(bits_of(-std::numeric_limits<T>::infinity())));
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_not_positive(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                const I b = bits_of(v + v);
                return compat::mask_cast<T>((b <= I(0)) | (b > I(float_bits<T>::inf)));
            }

            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_zero(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                return compat::mask_cast<T>((bits_of(v + v) & I(float_bits<T>::abs_mask)) == I(0));
            }

            /// v > 0 and finite.
            template <class T, class A>
            inline xsimd::batch_bool<T, A> is_positive_finite(const xsimd::batch<T, A>& v) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                const I b = bits_of(v);
                return compat::mask_cast<T>((b > I(0)) & (b < I(float_bits<T>::inf)));
            }
#endif
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
