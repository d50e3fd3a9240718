/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_POINTWISE_OPTIONS_HPP
#define XLOSS_POINTWISE_OPTIONS_HPP

/// @file
/// The options every pointwise loss has: those of every loss, and the option path's (a scalar
/// weight, reduction axes, an input of logits).

#include <array>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>

#include "detail/core/error.hpp"
#include "detail/core/setter_check.hpp"
#include "loss_options.hpp"

namespace xloss
{
    /**
     * @brief The options of a pointwise loss (a term per element of two tensors of one broadcast
     *        shape); `D` is the loss's options class, which derives from this one.
     *
     * Besides the reduction, its divisor and the threads (detail::loss_options): a scalar weight, a
     * reduction over chosen axes (axes(), per_sample()), an input of logits (a log-softmax along
     * class_axis() first), and whether the fused forward and backward also gives the target's
     * gradient. kl_div_options is one; pointwise_loss.hpp says how to add a loss.
     */
    template <class D>
    class pointwise_options : public detail::loss_options<D>
    {
    public:

        /// Whether the input holds logits, to which a log-softmax along class_axis() is applied first
        /// (input() == row_input::logits).
        constexpr bool input_logits() const noexcept
        {
            return m_input_logits;
        }

        /// Sets whether the input holds logits (MXNet's `from_logits = false`); the input gradient is
        /// then the gradient w.r.t. the logits.
        constexpr D& input_logits(bool value) noexcept
        {
            m_input_logits = value;
            return self();
        }

        /// What the input holds: row_input::log_probs (the default, PyTorch's) or row_input::logits
        /// (input_logits(true)), the divergences' name for the same choice.
        constexpr row_input input() const noexcept
        {
            return m_input_logits ? row_input::logits : row_input::log_probs;
        }

        /// Sets what the input holds; throws std::invalid_argument for a value that is not an enumerator.
        XLOSS_INLINE constexpr D& input(row_input value)
        {
            option_setters::check_row_input(D::options_name, value);
            m_input_logits = value == row_input::logits;
            return self();
        }

        /// The class axis: the axis of the input's log-softmax when it holds logits (default -1, the
        /// last); the divergences' name for it.
        constexpr std::ptrdiff_t class_axis() const noexcept
        {
            return m_class_axis;
        }

        /// Sets the class axis (negative counts from the end).
        constexpr D& class_axis(std::ptrdiff_t axis) noexcept
        {
            m_class_axis = axis;
            return self();
        }

        /// class_axis() under its older name.
        constexpr std::ptrdiff_t softmax_axis() const noexcept
        {
            return m_class_axis;
        }

        /// class_axis(axis) under its older name.
        constexpr D& softmax_axis(std::ptrdiff_t axis) noexcept
        {
            return class_axis(axis);
        }

        /// Whether the fused forward and backward (kl_div_forward_backward(), a module's
        /// forward_backward()) also gives the target's gradient (default false; their
        /// `with_target_grad` argument asks for it too).
        constexpr bool target_grad() const noexcept
        {
            return m_target_grad;
        }

        /// Sets target_grad().
        constexpr D& target_grad(bool value) noexcept
        {
            m_target_grad = value;
            return self();
        }

        /// The scalar weight every term is multiplied by (default 1; MXNet's `weight`).
        constexpr double weight() const noexcept
        {
            return m_weight;
        }

        /// Sets the scalar weight.
        constexpr D& weight(double value) noexcept
        {
            m_weight = value;
            return self();
        }

        /// At most this many reduction axes.
        static constexpr std::size_t max_axes = 8;

        /**
         * Reduces over these axes of the loss only (with `sum` or `mean`): the loss keeps the other
         * axes, as `reduction='none'` followed by a sum over `axes` would. Negative axes count from
         * the end. An empty list restores the reduction over every axis.
         * @throw std::invalid_argument for more than max_axes axes
         */
        D& axes(std::initializer_list<std::ptrdiff_t> list)
        {
            return set_axes(list.begin(), list.end(), false);
        }

        /// axes() from any container of integers.
        template <class C>
        D& axes(const C& list)
        {
            return set_axes(std::begin(list), std::end(list), false);
        }

        /**
         * Reduces over every axis except `batch_axis` (MXNet's per-sample reduction): the loss has
         * the shape (batch,).
         */
        D& per_sample(std::ptrdiff_t batch_axis = 0)
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

    protected:

        /// Options with reduction `r` (the derived options' constructors).
        constexpr explicit pointwise_options(xloss::reduction r = xloss::reduction::mean) noexcept
            : detail::loss_options<D>(r)
        {
        }

    private:

        constexpr D& self() noexcept
        {
            return static_cast<D&>(*this);
        }

        template <class It>
        D& set_axes(It first, It last, bool exclude)
        {
            std::size_t n = 0;
            for (It it = first; it != last; ++it, ++n)
            {
                if (n == max_axes)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + D::options_name
                                                        + ": axes takes at most " + std::to_string(max_axes)
                                                        + " axes"));
                }
                m_axes[n] = static_cast<std::ptrdiff_t>(*it);
            }
            m_axis_count = n;
            m_axes_exclude = exclude;
            return self();
        }

        bool m_input_logits = false;
        std::ptrdiff_t m_class_axis = -1;
        bool m_target_grad = false;
        double m_weight = 1.;
        std::array<std::ptrdiff_t, max_axes> m_axes = {};
        std::size_t m_axis_count = 0;
        bool m_axes_exclude = false;
    };
}

#endif
