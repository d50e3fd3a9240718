/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_OPTIONS_CHECK_HPP
#define XLOSS_DETAIL_CORE_OPTIONS_CHECK_HPP

// The checks every loss makes of its options, and their error messages.

#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../kernels/float_bits.hpp"
#include "error.hpp"
#include "expression.hpp"
#include "vocabulary.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// A reduction that is not an enumerator (a cast integer) is an error, not a silent sum.
            inline void check_reduction(reduction r, const char* func)
            {
                if (!is_valid(r))
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": reduction "
                                                        + std::to_string(static_cast<int>(r))
                                                        + " is not one of none, mean, sum, batchmean"));
                }
            }

            inline int resolve_threads(int requested, const char* func)
            {
                if (requested < 0)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                        + ": num_threads must be 0 (OpenMP's "
                                                          "default) or positive, got "
                                                        + std::to_string(requested)));
                }
#ifdef _OPENMP
                return requested == 0 ? omp_get_max_threads() : requested;
#else
                if (requested > 1)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": num_threads("
                                                        + std::to_string(requested)
                                                        + ") needs OpenMP, and this translation unit is compiled "
                                                          "without it (compile with -fopenmp, or link "
                                                          "OpenMP::OpenMP_CXX; xloss::has_openmp() tells)"));
                }
                return 1;
#endif
            }

            inline std::invalid_argument shape_error(const char* func, const char* what, const shape_type& got,
                                                     const char* expected_what, const shape_type& expected)
            {
                return std::invalid_argument(std::string("xloss::") + func + ": " + what + " of shape "
                                             + shape_to_string(got) + " does not match " + expected_what + " "
                                             + shape_to_string(expected));
            }

            /// Checks the options every loss has (detail::loss_options: its reduction and divisor);
            /// `zero_means` says where a divisor of 0 takes the count from, for the message.
            template <class Options>
            inline void check_loss_options(const Options& options, const char* func, const char* zero_means)
            {
                check_reduction(options.reduction(), func);
                if (!is_nonnegative_finite(options.divisor()))
                {
                    detail::raise(option_error(func, "divisor", std::string("positive (or 0: ") + zero_means + ")",
                                               options.divisor()));
                }
            }
        }
    }
}

#endif
