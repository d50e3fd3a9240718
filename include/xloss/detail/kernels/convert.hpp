/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_CONVERT_HPP
#define XLOSS_DETAIL_KERNELS_CONVERT_HPP

// Rows of a storage type S (float, double, or the 16-bit bfloat16 and half) read into the kernels'
// value type V and written back: a copy where the types are the same, a conversion per element
// otherwise. Conversions are exact towards V and round to nearest even towards S, whatever the
// instruction set (arch.hpp's `wide_rows` hook converts a contiguous row of half with F16C).

#include <cstddef>
#include <type_traits>

#include "../../float16.hpp"
#include "arch.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The value type the kernels compute in for elements stored as S: float for the 16-bit types.
            template <class S>
            using compute_t = std::conditional_t<is_float16<S>::value, float, S>;

            /// A value as an element of type S: rounded to S's compute type first (a 16-bit element is
            /// made from a float; one made from a double would round twice all the same).
            template <class S>
            XLOSS_INLINE S stored_as(double value) noexcept
            {
                return static_cast<S>(static_cast<compute_t<S>>(value));
            }

            /// n elements of src, `stride` apart, into dst as V.
            template <class S, class V>
            inline void widen_row(const S* src, std::size_t stride, std::size_t n, V* dst) noexcept
            {
                if constexpr (wide_rows<S>::value)
                {
                    if (stride == 1)
                    {
                        wide_rows<S>::widen(src, n, dst);
                        return;
                    }
                }
                for (std::size_t j = 0; j < n; ++j)
                {
                    dst[j] = static_cast<V>(src[j * stride]);
                }
            }

            /// n elements of src into dst, `stride` apart, as S.
            template <class S, class V>
            inline void narrow_row(const V* src, std::size_t n, S* dst, std::size_t stride) noexcept
            {
                if constexpr (wide_rows<S>::value)
                {
                    if (stride == 1)
                    {
                        wide_rows<S>::narrow(src, n, dst);
                        return;
                    }
                }
                for (std::size_t j = 0; j < n; ++j)
                {
                    dst[j * stride] = static_cast<S>(src[j]);
                }
            }
        }
    }
}

#endif
