/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_FLOAT_BITS_HPP
#define XLOSS_DETAIL_KERNELS_FLOAT_BITS_HPP

// Special values of scalars told by their bits. Under -ffast-math (-ffinite-math-only) compilers
// assume that no value is NaN or infinite and fold `x != x`, `x == inf`, `std::isnan(x)` and
// `!(x >= 0)` to whatever suits them; a comparison of the integer bits they cannot fold, so the
// semantics of xloss do not depend on the caller's floating-point flags. The batch forms are in
// classify.hpp, beside this file; the options' setters use these (through core/setter_check.hpp).

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../../xloss_config.hpp"

#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define XLOSS_HAS_BIT_CAST 1
#endif
#endif
#ifndef XLOSS_HAS_BIT_CAST
#define XLOSS_HAS_BIT_CAST 0
#endif

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Lane-wise `and` and `or` of two masks: `&&` and `||` of a scalar's bools, `&` and `|` of
            /// batch masks.
            inline bool both(bool a, bool b) noexcept
            {
                return a && b;
            }

            inline bool either(bool a, bool b) noexcept
            {
                return a || b;
            }

            /// The signed integer of a floating-point type's width, and the bits of +inf.
            template <class T>
            struct float_bits;

            template <>
            struct float_bits<float>
            {
                using type = std::int32_t;
                static constexpr type inf = 0x7f800000;
                static constexpr type abs_mask = 0x7fffffff;
            };

            template <>
            struct float_bits<double>
            {
                using type = std::int64_t;
                static constexpr type inf = 0x7ff0000000000000;
                static constexpr type abs_mask = 0x7fffffffffffffff;
            };

            /**
             * long double: the ops and policies are templates over any floating-point lane type, and
             * evaluated in long double they are the reference the tests and fuzzers compare against
             * (the losses themselves take float and double only). Its sign, exponent and mantissa
             * read by layout (x87's 80 bits, IEEE quad, or the same as double), little-endian. These
             * overloads must be declared before the ops (no argument-dependent lookup for a built-in
             * type), so they stay here rather than under tests/.
             */
            struct long_double_parts
            {
                bool negative;
                bool exponent_max;
                bool exponent_zero;
                bool mantissa_zero;
            };

            inline long_double_parts parts_of(long double v) noexcept
            {
                constexpr int digits = std::numeric_limits<long double>::digits;
                static_assert(digits == 53 || digits == 64 || digits == 113, "xloss: unknown long double layout");
                unsigned char b[sizeof(long double)] = {};
                std::memcpy(b, &v, sizeof v);
                std::uint64_t low = 0;
                std::memcpy(&low, b, 8);
                if constexpr (digits == 53)
                {
                    const std::uint64_t e = (low >> 52) & 0x7ff;
                    return {(low >> 63) != 0, e == 0x7ff, e == 0, (low << 12) == 0};
                }
                else if constexpr (digits == 64)
                {
                    std::uint16_t se = 0;
                    std::memcpy(&se, b + 8, 2);
                    const unsigned e = se & 0x7fffu;
                    // The explicit integer bit (bit 63) is not part of the fraction.
                    return {(se >> 15) != 0, e == 0x7fffu, e == 0, (low << 1) == 0};
                }
                else
                {
                    std::uint64_t high = 0;
                    std::memcpy(&high, b + 8, 8);
                    const std::uint64_t e = (high >> 48) & 0x7fff;
                    return {(high >> 63) != 0, e == 0x7fff, e == 0, low == 0 && (high << 16) == 0};
                }
            }

            inline bool is_nan(long double v) noexcept
            {
                const auto p = parts_of(v);
                return p.exponent_max && !p.mantissa_zero;
            }

            inline bool is_inf(long double v) noexcept
            {
                const auto p = parts_of(v);
                return p.exponent_max && p.mantissa_zero;
            }

            inline bool is_finite(long double v) noexcept
            {
                return !parts_of(v).exponent_max;
            }

            inline bool is_neg_inf(long double v) noexcept
            {
                return is_inf(v) && parts_of(v).negative;
            }

            inline bool is_zero(long double v) noexcept
            {
                const auto p = parts_of(v);
                return p.exponent_zero && p.mantissa_zero;
            }

            inline bool is_not_positive(long double v) noexcept
            {
                const auto p = parts_of(v);
                return p.negative || (p.exponent_zero && p.mantissa_zero) || is_nan(v);
            }

            /// The bits of a scalar as a signed integer (negative numbers are negative); a constant
            /// expression where the compiler has __builtin_bit_cast (g++ 11, clang 9 and later), so
            /// that the options' setters stay constexpr.
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr typename float_bits<T>::type bits_of(T v) noexcept
            {
#if XLOSS_HAS_BIT_CAST
                return __builtin_bit_cast(typename float_bits<T>::type, v);
#else
                typename float_bits<T>::type b{};
                std::memcpy(&b, &v, sizeof b);
                return b;
#endif
            }

            // float and double scalars: plain bools.

            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_nan(T v) noexcept
            {
                return (bits_of(v) & float_bits<T>::abs_mask) > float_bits<T>::inf;
            }

            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_inf(T v) noexcept
            {
                return (bits_of(v) & float_bits<T>::abs_mask) == float_bits<T>::inf;
            }

            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_finite(T v) noexcept
            {
                return (bits_of(v) & float_bits<T>::abs_mask) < float_bits<T>::inf;
            }

            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_neg_inf(T v) noexcept
            {
                return bits_of(v) == bits_of(-std::numeric_limits<T>::infinity());
            }

            /**
             * v == 0, either sign, read from the bits of v + v: NaN stays NaN (g++ compares scalars
             * without the unordered check under -ffast-math, so NaN == 0 is true there), and under
             * flush-to-zero arithmetic, which a program linked with -ffast-math runs with, a subnormal
             * counts as the 0 it is read as, as it does in every other operation.
             */
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            inline bool is_zero(T v) noexcept
            {
                return (bits_of(v + v) & float_bits<T>::abs_mask) == 0;
            }

            /// v > 0 and finite.
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_positive_finite(T v) noexcept
            {
                const auto b = bits_of(v);
                return b > 0 && b < float_bits<T>::inf;
            }

            /// v >= 0 (either zero) and finite.
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_nonnegative_finite(T v) noexcept
            {
                return is_positive_finite(v) || (bits_of(v) & float_bits<T>::abs_mask) == 0;
            }

            /// The sign bit set and not NaN (-0 included): `v < 0` may let NaN through as true under -ffast-math.
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            constexpr bool is_negative(T v) noexcept
            {
                const auto b = bits_of(v);
                return b < 0 && (b & float_bits<T>::abs_mask) <= float_bits<T>::inf;
            }

            /// Not v > 0: zero (as is_zero reads it), negative or NaN (`!(v > 0)`, which -ffast-math
            /// may turn into `v <= 0`).
            template <class T, std::enable_if_t<std::is_floating_point<T>::value, int> = 0>
            inline bool is_not_positive(T v) noexcept
            {
                const auto b = bits_of(v + v);
                return b <= 0 || b > float_bits<T>::inf;
            }
        }
    }
}

#endif
