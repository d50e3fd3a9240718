/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_OPTIONS_HPP
#define XLOSS_KL_DIV_OPTIONS_HPP

/// @file
/// The options shared by the kl_div functions and the KLDivLoss module.

#include <array>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "detail/core/error.hpp"
#include "pointwise_options.hpp"
#include "reduction.hpp"
#include "row_input.hpp"

namespace xloss
{
    /**
     * @brief What a probability target that is negative (or NaN) means.
     *
     * Zero targets always contribute exactly 0. A target in log space (`log_target`) has no
     * invalid values: every policy computes `exp(t) * (t - x)` there.
     */
    enum class target_policy
    {
        pytorch, ///< PyTorch 1.13 and later (the default): a negative target gives NaN
        zero,    ///< Paddle, OneFlow, PyTorch <= 1.12: a target that is not positive contributes 0, gradients too
        checked  ///< PyTorch's numbers, but a negative or NaN probability or a NaN input throws std::domain_error
    };

    /**
     * @brief Options of the KL-divergence loss, shared by kl_div() and KLDivLoss.
     *
     * Setters return the object, so options read like libtorch's:
     * @code
     * auto opts = xloss::kl_div_options().reduction(xloss::reduction::batchmean).log_target(true);
     * @endcode
     * The reduction, its divisor, the threads and the option path's options (weight, axes, an input of
     * logits) come from pointwise_options: `mean` divides the sum of the pointwise terms by their
     * number, `batchmean` by the input's first dimension; threads split tensors of more than 65536
     * elements whose arguments are contiguous.
     */
    class kl_div_options : public pointwise_options<kl_div_options>
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "kl_div_options";

        /// Options with the given reduction and target space (defaults: mean, probabilities).
        constexpr kl_div_options(xloss::reduction r = xloss::reduction::mean, bool log_target = false) noexcept
            : pointwise_options<kl_div_options>(r)
            , m_log_target(log_target)
        {
        }

        /// Options from a reduction name; throws std::invalid_argument for an unknown name.
        kl_div_options(std::string_view r, bool log_target = false)
            : kl_div_options(parse_reduction(r), log_target)
        {
        }

        /**
         * @brief MXNet Gluon's `KLDivLoss(from_logits, axis, weight, batch_axis)`.
         *
         * `t * (log(t + 1e-12) - x)` times `weight` (and a sample weight, if the call passes one),
         * averaged over every axis but `batch_axis`: the loss has shape (batch,). Unless
         * `from_logits`, the input holds logits and a log-softmax along `axis` is applied first.
         */
        static kl_div_options gluon(bool from_logits = true, std::ptrdiff_t axis = -1, double weight = 1.,
                                    std::ptrdiff_t batch_axis = 0)
        {
            return kl_div_options(xloss::reduction::mean)
                .input(from_logits ? row_input::log_probs : row_input::logits)
                .class_axis(axis)
                .weight(weight)
                .epsilon(1e-12)
                .per_sample(batch_axis);
        }

        /**
         * @brief PyTorch's deprecated `size_average` and `reduce` arguments, which override the
         *        reduction when either is given; see legacy_reduction().
         */
        static kl_div_options legacy(std::optional<bool> size_average, std::optional<bool> reduce,
                                     bool log_target = false)
        {
            return kl_div_options(legacy_reduction(size_average, reduce), log_target);
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

        /// What a negative or NaN probability target means (default: PyTorch's NaN).
        constexpr xloss::target_policy target_policy() const noexcept
        {
            return m_target_policy;
        }

        /// Sets the target policy.
        constexpr kl_div_options& target_policy(xloss::target_policy p) noexcept
        {
            m_target_policy = p;
            return *this;
        }

        /// The epsilon added to a probability target inside the log (default 0; MXNet: 1e-12).
        constexpr double epsilon() const noexcept
        {
            return m_epsilon;
        }

        /**
         * Sets the epsilon of `t * (log(t + epsilon) - x)`, MXNet's guard against log(0); the target
         * gradient is then `log(t + epsilon) + t / (t + epsilon) - x`. Not allowed with `log_target`.
         */
        constexpr kl_div_options& epsilon(double value) noexcept
        {
            m_epsilon = value;
            return *this;
        }

    private:

        bool m_log_target;
        xloss::target_policy m_target_policy = xloss::target_policy::pytorch;
        double m_epsilon = 0.;
    };
}

#endif
