/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_SETTER_CHECK_HPP
#define XLOSS_DETAIL_CORE_SETTER_CHECK_HPP

// The check an options setter makes of its value, so that a bad option fails where it is set
// (`xloss::jsd_options().beta(1.5)` throws there), with a message naming the setter, the option and
// the value. The losses check their options again when they run (options built otherwise).

#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

#include "error.hpp"

namespace xloss
{
    // In the ISA namespace, as all of xloss's code (an object built for AVX-512 and one for baseline
    // x86-64 share no symbol), but outside `detail`: the options classes live in xloss::detail,
    // outside it, and name these option_setters::check_setter.
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace option_setters
        {
            /// Throws, naming the setter (e.g. "xloss::jsd_options::beta"), unless `ok`.
            inline void check_setter(bool ok, const char* options, const char* option, const char* must, double got)
            {
                if (!ok)
                {
                    std::ostringstream os;
                    os.precision(9);
                    os << "xloss::" << options << "::" << option << ": " << option << " must be " << must << ", got "
                       << got;
                    detail::raise(std::invalid_argument(os.str()));
                }
            }

            /// The bits of v: -ffast-math may fold std::isfinite and comparisons with NaN, not these.
            inline std::uint64_t setter_bits(double v) noexcept
            {
                std::uint64_t b;
                std::memcpy(&b, &v, sizeof b);
                return b;
            }

            /// v > 0 and finite.
            inline bool positive_finite(double v) noexcept
            {
                const std::uint64_t b = setter_bits(v);
                return b > 0 && b < 0x7ff0000000000000ull;
            }

            /// v >= 0 (either zero) and finite.
            inline bool nonnegative_finite(double v) noexcept
            {
                return positive_finite(v) || setter_bits(v) == 0 || setter_bits(v) == 0x8000000000000000ull;
            }
        }
    }
}

#endif
