/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_ERROR_HPP
#define XLOSS_DETAIL_CORE_ERROR_HPP

// The one place where xloss raises an error. With exceptions (the default) it throws; in a build
// without them (-fno-exceptions) it prints the same message to stderr and aborts, as xtensor's
// XTENSOR_THROW does.

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

#include "../../xloss_config.hpp"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define XLOSS_HAS_EXCEPTIONS 1
#else
#define XLOSS_HAS_EXCEPTIONS 0
#endif

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Throws `error`; without exceptions, prints its message and aborts.
            template <class E>
            [[noreturn]] inline void raise(const E& error)
            {
#if XLOSS_HAS_EXCEPTIONS
                throw error;
#else
                std::fprintf(stderr, "%s\n", error.what());
                std::abort();
#endif
            }

            /// A number in an error message: 9 significant digits (a float's value, told apart).
            inline std::string number_to_string(double v)
            {
                std::ostringstream os;
                os.precision(9);
                os << v;
                return os.str();
            }

            /// "xloss::<func>: <option> must be <must>, got <got>", the message of every bad option.
            inline std::invalid_argument option_error(const char* func, const char* option, const std::string& must,
                                                      double got)
            {
                return std::invalid_argument(std::string("xloss::") + func + ": " + option + " must be " + must
                                             + ", got " + number_to_string(got));
            }
        }
    }
}

#endif
