/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_SETTER_CHECK_HPP
#define XLOSS_DETAIL_CORE_SETTER_CHECK_HPP

// The check an options setter makes of its value, so that a bad option fails where it is set
// (`xloss::jsd_options().beta(1.5)` throws there), with a message naming the setter, the option and
// the value. The losses check their options again when they run (options built otherwise).

#include <string>

#include "error.hpp"
#include "float_bits.hpp"

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
                    const std::string setter = std::string(options) + "::" + option;
                    detail::raise(detail::option_error(setter.c_str(), option, must, got));
                }
            }

            // The bit tests, which -ffast-math cannot fold as it folds std::isfinite.
            using detail::is_nonnegative_finite;
            using detail::is_positive_finite;
        }
    }
}

#endif
