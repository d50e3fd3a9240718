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

#include "xloss_config.hpp"

namespace xloss
{
    /// @defgroup float16 16-bit storage
    /// Element types that store floats in 16 bits, for logits and gradients at language-model scale.
    /// The losses that take them (cross_entropy and the divergences from logits) read them row by row
    /// into float, compute and accumulate in float, and write their results in the inputs' type.
    /// Conversions round to nearest, ties to even, as PyTorch's do; they use integer operations
    /// only, so that no compiler flag changes their results, and are always inlined: these types
    /// live outside the instruction set's inline namespace, and no out-of-line copy compiled with
    /// one translation unit's -m flags may reach another's callers.
    /// @{

    // The conversions, outside `detail`: this header may come before or after the others, and an
    // `xloss::detail` opened here first would make the kernels' inline-namespace `detail` ambiguous.
    namespace float16_bits
    {
        /// The bits of a float.
        XLOSS_INLINE std::uint32_t bits_of_float(float f) noexcept
        {
            std::uint32_t u;
            std::memcpy(&u, &f, sizeof u);
            return u;
        }

        /// The float of these bits.
        XLOSS_INLINE float float_of_bits(std::uint32_t u) noexcept
        {
            float f;
            std::memcpy(&f, &u, sizeof f);
            return f;
        }

        /// The bfloat16 nearest to f (ties to even); a NaN stays a NaN, quiet.
        XLOSS_INLINE std::uint16_t float_to_bfloat16_bits(float f) noexcept
        {
            const std::uint32_t u = bits_of_float(f);
            if ((u & 0x7fffffffu) > 0x7f800000u)
            {
                return static_cast<std::uint16_t>((u >> 16) | 0x40u);
            }
            return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        }

        /// The float of a bfloat16's bits (exact: the bits are a float's top half).
        XLOSS_INLINE float bfloat16_bits_to_float(std::uint16_t h) noexcept
        {
            return float_of_bits(static_cast<std::uint32_t>(h) << 16);
        }

        /// The IEEE binary16 nearest to f (ties to even): subnormal below 2^-14, infinite from 65520 on;
        /// a NaN stays a NaN, quiet, with the top of its payload (as x86's F16C conversion).
        XLOSS_INLINE std::uint16_t float_to_half_bits(float f) noexcept
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

        /// The float of a half's bits (exact; a NaN comes out quiet, as from x86's F16C conversion).
        XLOSS_INLINE float half_bits_to_float(std::uint16_t h) noexcept
        {
            const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
            std::uint32_t e = (h >> 10) & 0x1fu;
            std::uint32_t m = h & 0x3ffu;
            if (e == 0x1fu) // infinite, or NaN: quiet, as F16C's conversion gives it
            {
                return float_of_bits(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
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

        /// bfloat16's conversions.
        struct bfloat16_format
        {
            /// The bits of the value nearest to f.
            static XLOSS_INLINE std::uint16_t from_float(float f) noexcept
            {
                return float_to_bfloat16_bits(f);
            }

            /// The value of these bits, exactly.
            static XLOSS_INLINE float to_float(std::uint16_t h) noexcept
            {
                return bfloat16_bits_to_float(h);
            }
        };

        /// half's conversions.
        struct half_format
        {
            /// The bits of the value nearest to f.
            static XLOSS_INLINE std::uint16_t from_float(float f) noexcept
            {
                return float_to_half_bits(f);
            }

            /// The value of these bits, exactly.
            static XLOSS_INLINE float to_float(std::uint16_t h) noexcept
            {
                return half_bits_to_float(h);
            }
        };
    }

    /**
     * A float stored in 16 bits of the given format (float16_bits::bfloat16_format or half_format).
     * Converts implicitly from float (to the nearest value, ties to even) and to float (exactly);
     * usable as the value type of `xt::xarray` and through `xt::adapt` over a tensor's data.
     */
    template <class Format>
    struct float16_storage
    {
        std::uint16_t bits; ///< the stored bits

        /// Uninitialised, as a float is: arrays of it are not written before use (`{}` is zero).
        float16_storage() noexcept = default;

        /// The value nearest to f.
        XLOSS_INLINE float16_storage(float f) noexcept // NOLINT(google-explicit-constructor): a float's storage
            : bits(Format::from_float(f))
        {
        }

        /// The value, exactly.
        XLOSS_INLINE operator float() const noexcept // NOLINT(google-explicit-constructor)
        {
            return Format::to_float(bits);
        }

        /// The value of these bits.
        static constexpr float16_storage from_bits(std::uint16_t b) noexcept
        {
            float16_storage r{};
            r.bits = b;
            return r;
        }
    };

    /// Brain floating point: a float's sign, exponent and top 7 mantissa bits, the layout of PyTorch's
    /// `torch::kBFloat16` (c10::BFloat16) and of `__bf16`.
    using bfloat16 = float16_storage<float16_bits::bfloat16_format>;

    /// IEEE 754 binary16: 5 exponent and 10 mantissa bits, the layout of PyTorch's `torch::kHalf`
    /// (c10::Half) and of `_Float16`.
    using half = float16_storage<float16_bits::half_format>;

    /// Prints the value as a float.
    template <class Format>
    XLOSS_INLINE std::ostream& operator<<(std::ostream& os, float16_storage<Format> v)
    {
        return os << static_cast<float>(v);
    }

    /// Whether T is one of the 16-bit storage types (bfloat16, half).
    template <class T>
    struct is_float16 : std::false_type
    {
    };

    /// A 16-bit storage type.
    template <class Format>
    struct is_float16<float16_storage<Format>> : std::true_type
    {
    };

    /// @}
}

#endif
