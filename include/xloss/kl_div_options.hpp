/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_OPTIONS_HPP
#define XLOSS_KL_DIV_OPTIONS_HPP

/// @file
/// The options shared by the kl_div functions and the KLDivLoss module.

#include <string_view>

#include "reduction.hpp"

namespace xloss
{
    /**
     * @brief Options of the KL-divergence loss, shared by kl_div() and KLDivLoss.
     *
     * Setters return the object, so options read like libtorch's:
     * @code
     * auto opts = xloss::kl_div_options().reduction(xloss::reduction::batchmean).log_target(true);
     * @endcode
     */
    class kl_div_options
    {
    public:

        /// Options with the given reduction and target space (defaults: mean, probabilities).
        constexpr kl_div_options(xloss::reduction r = xloss::reduction::mean, bool log_target = false) noexcept
            : m_reduction(r)
            , m_log_target(log_target)
        {
        }

        /// Options from a reduction name; throws std::invalid_argument for an unknown name.
        kl_div_options(std::string_view r, bool log_target = false)
            : kl_div_options(parse_reduction(r), log_target)
        {
        }

        /// The reduction applied to the pointwise terms.
        constexpr xloss::reduction reduction() const noexcept
        {
            return m_reduction;
        }

        /// Sets the reduction.
        constexpr kl_div_options& reduction(xloss::reduction r) noexcept
        {
            m_reduction = r;
            return *this;
        }

        /// Whether the target holds log-probabilities.
        constexpr bool log_target() const noexcept
        {
            return m_log_target;
        }

        /// Sets whether the target holds log-probabilities.
        constexpr kl_div_options& log_target(bool value) noexcept
        {
            m_log_target = value;
            return *this;
        }

        /// Threads for large contiguous tensors (default 1); used when compiled with OpenMP.
        constexpr int num_threads() const noexcept
        {
            return m_num_threads;
        }

        /**
         * Sets the number of OpenMP threads for tensors of more than 65536 elements whose input,
         * target (and grad_output) are contiguous: 1 (the default) runs on the calling thread, 0
         * takes OpenMP's default. Results are bit-identical for any value. Without OpenMP (compile
         * with -fopenmp, or link OpenMP::OpenMP_CXX) it is ignored.
         */
        constexpr kl_div_options& num_threads(int value) noexcept
        {
            m_num_threads = value;
            return *this;
        }

    private:

        xloss::reduction m_reduction;
        bool m_log_target;
        int m_num_threads = 1;
    };
}

#endif
