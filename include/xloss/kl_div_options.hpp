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
#include "loss_options.hpp"
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
     * The reduction, its divisor and the threads come from detail::loss_options: `mean` divides the
     * sum of the pointwise terms by their number, `batchmean` by the input's first dimension;
     * threads split tensors of more than 65536 elements whose arguments are contiguous.
     */
    class kl_div_options : public detail::loss_options<kl_div_options>
    {
    public:

        static constexpr const char* options_name = "kl_div_options";

        /// Options with the given reduction and target space (defaults: mean, probabilities).
        constexpr kl_div_options(xloss::reduction r = xloss::reduction::mean, bool log_target = false) noexcept
            : detail::loss_options<kl_div_options>(r)
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

        /// Whether the input holds logits, to which a log-softmax along class_axis() is applied first
        /// (input() == row_input::logits: the shared vocabulary's name).
        constexpr bool input_logits() const noexcept
        {
            return m_input_logits;
        }

        /// Sets whether the input holds logits (MXNet's `from_logits = false`); the input gradient is
        /// then the gradient w.r.t. the logits.
        constexpr kl_div_options& input_logits(bool value) noexcept
        {
            m_input_logits = value;
            return *this;
        }

        /// What the input holds: row_input::log_probs (the default, PyTorch's) or row_input::logits
        /// (input_logits(true)), the divergences' name for the same choice.
        constexpr row_input input() const noexcept
        {
            return m_input_logits ? row_input::logits : row_input::log_probs;
        }

        /// Sets what the input holds; throws std::invalid_argument for a value that is not an enumerator.
        XLOSS_INLINE constexpr kl_div_options& input(row_input value)
        {
            if (value != row_input::logits && value != row_input::log_probs)
            {
                option_setters::reject(options_name, "input", "row_input::logits or row_input::log_probs",
                                       static_cast<double>(static_cast<int>(value)));
            }
            m_input_logits = value == row_input::logits;
            return *this;
        }

        /// The class axis: the axis of the input's log-softmax when it holds logits (default -1, the
        /// last); the divergences' name for it.
        constexpr std::ptrdiff_t class_axis() const noexcept
        {
            return m_softmax_axis;
        }

        /// Sets the class axis (negative counts from the end).
        constexpr kl_div_options& class_axis(std::ptrdiff_t axis) noexcept
        {
            m_softmax_axis = axis;
            return *this;
        }

        /// class_axis() under its older name.
        constexpr std::ptrdiff_t softmax_axis() const noexcept
        {
            return m_softmax_axis;
        }

        /// class_axis(axis) under its older name.
        constexpr kl_div_options& softmax_axis(std::ptrdiff_t axis) noexcept
        {
            return class_axis(axis);
        }

        /// Whether kl_div_forward_backward() and KLDivLoss::forward_backward() also give the target's
        /// gradient (default false; their `with_target_grad` argument asks for it too).
        constexpr bool target_grad() const noexcept
        {
            return m_target_grad;
        }

        constexpr kl_div_options& target_grad(bool value) noexcept
        {
            m_target_grad = value;
            return *this;
        }

        /// The scalar weight every term is multiplied by (default 1; MXNet's `weight`).
        constexpr double weight() const noexcept
        {
            return m_weight;
        }

        /// Sets the scalar weight.
        constexpr kl_div_options& weight(double value) noexcept
        {
            m_weight = value;
            return *this;
        }

        /// At most this many reduction axes.
        static constexpr std::size_t max_axes = 8;

        /**
         * Reduces over these axes of the loss only (with `sum` or `mean`): the loss keeps the other
         * axes, as `reduction='none'` followed by a sum over `axes` would. Negative axes count from
         * the end. An empty list restores the reduction over every axis.
         * @throw std::invalid_argument for more than max_axes axes
         */
        kl_div_options& axes(std::initializer_list<std::ptrdiff_t> list)
        {
            return set_axes(list.begin(), list.end(), false);
        }

        /// axes() from any container of integers.
        template <class C>
        kl_div_options& axes(const C& list)
        {
            return set_axes(std::begin(list), std::end(list), false);
        }

        /**
         * Reduces over every axis except `batch_axis` (MXNet's per-sample reduction): the loss has
         * the shape (batch,).
         */
        kl_div_options& per_sample(std::ptrdiff_t batch_axis = 0)
        {
            return set_axes(&batch_axis, &batch_axis + 1, true);
        }

        /// Whether the reduction runs over chosen axes (axes() or per_sample()), not over all.
        constexpr bool has_axes() const noexcept
        {
            return m_axis_count > 0 || m_axes_exclude;
        }

        /// The axes given to axes(), or the batch axis given to per_sample().
        constexpr const std::ptrdiff_t* axes_begin() const noexcept
        {
            return m_axes.data();
        }

        /// End of the axes.
        constexpr const std::ptrdiff_t* axes_end() const noexcept
        {
            return m_axes.data() + m_axis_count;
        }

        /// Whether the axes are the ones kept (per_sample()) rather than the ones reduced.
        constexpr bool axes_exclude() const noexcept
        {
            return m_axes_exclude;
        }

    private:

        template <class It>
        kl_div_options& set_axes(It first, It last, bool exclude)
        {
            std::size_t n = 0;
            for (It it = first; it != last; ++it, ++n)
            {
                if (n == max_axes)
                {
                    detail::raise(std::invalid_argument("xloss::kl_div_options: axes takes at most "
                                                        + std::to_string(max_axes) + " axes"));
                }
                m_axes[n] = static_cast<std::ptrdiff_t>(*it);
            }
            m_axis_count = n;
            m_axes_exclude = exclude;
            return *this;
        }

        bool m_log_target;
        xloss::target_policy m_target_policy = xloss::target_policy::pytorch;
        double m_epsilon = 0.;
        bool m_input_logits = false;
        std::ptrdiff_t m_softmax_axis = -1;
        bool m_target_grad = false;
        double m_weight = 1.;
        std::array<std::ptrdiff_t, max_axes> m_axes = {};
        std::size_t m_axis_count = 0;
        bool m_axes_exclude = false;
    };
}

#endif
