/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_SETTER_CHECK_HPP
#define XLOSS_DETAIL_CORE_SETTER_CHECK_HPP

// The check an options setter makes of its value, so that a bad option fails where it is set
// (`xloss::jsd_options().beta(1.5)` throws there), with a message naming the setter, the option and
// the value. The losses check their options again when they run (options built otherwise).

#include <stdexcept>
#include <string>
#include <string_view>

#include "../kernels/float_bits.hpp"
#include "error.hpp"
#include "vocabulary.hpp"

namespace xloss
{
    // In the ISA namespace, as all of xloss's code (an object built for AVX-512 and one for baseline
    // x86-64 share no symbol), but outside `detail`: the options classes live in xloss::detail,
    // outside it (one type for every instruction set), and name these option_setters::reject. Their
    // setters are XLOSS_INLINE: inlined everywhere, they leave no out-of-line copy that the linker
    // could pick from a translation unit built for another instruction set.
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace option_setters
        {
            /// Throws std::invalid_argument naming the setter (e.g. "xloss::jsd_options::beta"), the
            /// option, what it must be and the value: a setter calls it on its failing path only, so
            /// that the setter stays a constant expression for valid values.
            [[noreturn]] inline void reject(const char* options, const char* option, const char* must, double got)
            {
                const std::string setter = std::string(options) + "::" + option;
                detail::raise(detail::option_error(setter.c_str(), option, must, got));
            }

            /// The same for an option given by name (e.g. a reduction's): the name quoted.
            [[noreturn]] inline void reject_name(const char* options, const char* option, const char* must,
                                                 std::string_view got)
            {
                detail::raise(std::invalid_argument(std::string("xloss::") + options + "::" + option + ": " + option
                                                    + " must be " + must + ", got '" + std::string(got) + "'"));
            }

            /// Rejects a row_input that is not an enumerator (the input() setters).
            XLOSS_INLINE constexpr void check_row_input(const char* options, row_input value)
            {
                if (value != row_input::logits && value != row_input::log_probs)
                {
                    reject(options, "input", "row_input::logits or row_input::log_probs",
                           static_cast<double>(static_cast<int>(value)));
                }
            }

            // The bit tests, which -ffast-math cannot fold as it folds std::isfinite.
            using detail::is_nonnegative_finite;
            using detail::is_positive_finite;
        }
    }
}

#endif
