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
        }
    }
}

#endif
