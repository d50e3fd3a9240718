/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FLOAT16_HPP
#define XLOSS_FLOAT16_HPP

/// @file
/// 16-bit floating-point storage types: xloss::bfloat16 and xloss::half.

#include <cstdint>
#include <cstring>
#include <ostream>
#include <type_traits>

namespace xloss
{
    /// @defgroup float16 16-bit storage
    /// Element types that store floats in 16 bits, for logits and gradients at language-model scale.
    /// The losses that take them (cross_entropy and the divergences from logits) read them row by row
    /// into float, compute and accumulate in float, and write their results in the inputs' type.
    /// Conversions round to nearest, ties to even, as PyTorch's do; they use integer operations
    /// only, so that no compiler flag changes them.
    /// @{

    // The conversions, outside `detail`: this header may come before or after the others, and an
    // `xloss::detail` opened here first would make the kernels' inline-namespace `detail` ambiguous.
    namespace float16_bits
    {
        /// The bits of a float.
        inline std::uint32_t bits_of_float(float f) noexcept
        {
            std::uint32_t u;
            std::memcpy(&u, &f, sizeof u);
            return u;
        }

        /// The float of these bits.
        inline float float_of_bits(std::uint32_t u) noexcept
        {
            float f;
            std::memcpy(&f, &u, sizeof f);
            return f;
        }

        /// The bfloat16 nearest to f (ties to even); a NaN stays a NaN, quiet.
        inline std::uint16_t float_to_bfloat16_bits(float f) noexcept
        {
            const std::uint32_t u = bits_of_float(f);
            if ((u & 0x7fffffffu) > 0x7f800000u)
            {
                return static_cast<std::uint16_t>((u >> 16) | 0x40u);
            }
            return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        }

        inline float bfloat16_bits_to_float(std::uint16_t h) noexcept
        {
            return float_of_bits(static_cast<std::uint32_t>(h) << 16);
        }

        /// The IEEE binary16 nearest to f (ties to even): subnormal below 2^-14, infinite from 65520 on;
        /// a NaN stays a NaN, quiet, with the top of its payload (as x86's F16C conversion).
        inline std::uint16_t float_to_half_bits(float f) noexcept
        {
            const std::uint32_t u = bits_of_float(f);
            const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
            const std::uint32_t a = u & 0x7fffffffu;
            if (a > 0x7f800000u)
            {
                return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
            }
            if (a >= 0x477ff000u) // 65520 and above, and +-inf
            {
                return static_cast<std::uint16_t>(sign | 0x7c00u);
            }
            if (a >= 0x38800000u) // normal: rebias the exponent (127 - 15), round off 13 bits
            {
                const std::uint32_t r = a - 0x38000000u;
                return static_cast<std::uint16_t>(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
            }
            if (a < 0x33000000u) // below 2^-25: rounds to 0
            {
                return sign;
            }
            // Subnormal: the significand in units of 2^-24, rounded off.
            const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
            const std::uint32_t shift = 126u - (a >> 23);
            const std::uint32_t rest = m & ((1u << shift) - 1u), half_unit = 1u << (shift - 1u);
            std::uint32_t q = m >> shift;
            q += (rest > half_unit || (rest == half_unit && (q & 1u))) ? 1u : 0u;
            return static_cast<std::uint16_t>(sign | q);
        }

        inline float half_bits_to_float(std::uint16_t h) noexcept
        {
            const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
            std::uint32_t e = (h >> 10) & 0x1fu;
            std::uint32_t m = h & 0x3ffu;
            if (e == 0x1fu)
            {
                return float_of_bits(sign | 0x7f800000u | (m << 13));
            }
            if (e == 0)
            {
                if (m == 0)
                {
                    return float_of_bits(sign);
                }
                e = 113; // a subnormal m 2^-24: normalise it
                while (!(m & 0x400u))
                {
                    m <<= 1;
                    --e;
                }
                return float_of_bits(sign | (e << 23) | ((m & 0x3ffu) << 13));
            }
            return float_of_bits(sign | ((e + 112u) << 23) | (m << 13));
        }
    }

    /**
     * Brain floating point: a float's sign, exponent and top 7 mantissa bits, the layout of PyTorch's
     * `torch::kBFloat16` (c10::BFloat16) and of `__bf16`. Converts implicitly from and to float; usable
     * as the value type of `xt::xarray` and through `xt::adapt` over a tensor's data.
     */
    struct bfloat16
    {
        std::uint16_t bits; ///< the stored bits

        /// Uninitialised, as a float is: arrays of it are not written before use (`bfloat16{}` is zero).
        bfloat16() noexcept = default;

        /// The bfloat16 nearest to f.
        bfloat16(float f) noexcept // NOLINT(google-explicit-constructor): a float's storage
            : bits(float16_bits::float_to_bfloat16_bits(f))
        {
        }

        /// The value, exactly.
        operator float() const noexcept // NOLINT(google-explicit-constructor)
        {
            return float16_bits::bfloat16_bits_to_float(bits);
        }

        /// The bfloat16 of these bits.
        static constexpr bfloat16 from_bits(std::uint16_t b) noexcept
        {
            bfloat16 r{};
            r.bits = b;
            return r;
        }
    };

    /**
     * IEEE 754 binary16: 5 exponent and 10 mantissa bits, the layout of PyTorch's `torch::kHalf`
     * (c10::Half) and of `_Float16`. Converts implicitly from and to float; usable as the value type of
     * `xt::xarray` and through `xt::adapt`.
     */
    struct half
    {
        std::uint16_t bits; ///< the stored bits

        /// Uninitialised, as a float is: arrays of it are not written before use (`half{}` is zero).
        half() noexcept = default;

        /// The half nearest to f.
        half(float f) noexcept // NOLINT(google-explicit-constructor): a float's storage
            : bits(float16_bits::float_to_half_bits(f))
        {
        }

        /// The value, exactly.
        operator float() const noexcept // NOLINT(google-explicit-constructor)
        {
            return float16_bits::half_bits_to_float(bits);
        }

        /// The half of these bits.
        static constexpr half from_bits(std::uint16_t b) noexcept
        {
            half r{};
            r.bits = b;
            return r;
        }
    };

    /// Prints the value as a float.
    inline std::ostream& operator<<(std::ostream& os, bfloat16 v)
    {
        return os << static_cast<float>(v);
    }

    /// Prints the value as a float.
    inline std::ostream& operator<<(std::ostream& os, half v)
    {
        return os << static_cast<float>(v);
    }

    /// Whether T is one of the 16-bit storage types (bfloat16, half).
    template <class T>
    struct is_float16 : std::integral_constant<bool, std::is_same<T, bfloat16>::value || std::is_same<T, half>::value>
    {
    };

    /// @}
}

#endif
