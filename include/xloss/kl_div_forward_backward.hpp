/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_FORWARD_BACKWARD_HPP
#define XLOSS_KL_DIV_FORWARD_BACKWARD_HPP

/// @file
/// The loss and its gradients in one pass over the inputs.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/kl_div/definition.hpp"
#include "kl_div_options.hpp"
#include "kl_div_result.hpp"
#include "pointwise_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief The loss and its input gradient (and, if `with_target_grad` or the options'
         *        target_grad(), its target gradient) in one pass that reads input and target once.
         *
         * Each result equals what kl_div(), kl_div_backward() and kl_div_target_backward() return
         * for a grad_output of 1.
         * @code
         * auto r = xloss::kl_div_forward_backward(x, t, xloss::kl_div_options(xloss::reduction::batchmean));
         * float loss = r.loss();
         * @endcode
         */
        template <class E1, class E2>
        auto kl_div_forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                     const kl_div_options& options = {}, bool with_target_grad = false);

        /**
         * @ingroup kl_div
         * @brief kl_div_forward_backward() into caller-provided outputs: `loss` as for kl_div_out(),
         *        `grad_input` of the input's shape. Allocation-free when input and target have the
         *        same shape and the gradient is contiguous row-major of the loss's value type.
         * @throw std::invalid_argument, leaving every output untouched, for shapes that do not fit
         */
        template <class L, class O, class E1, class E2>
        void kl_div_forward_backward_out(L& loss, O& grad_input, const xt::xexpression<E1>& input,
                                         const xt::xexpression<E2>& target, const kl_div_options& options = {});

        /// @brief The same with the target gradient too, into `grad_target` of the target's shape.
        template <class L, class O, class P, class E1, class E2>
        void kl_div_forward_backward_out(L& loss, O& grad_input, P& grad_target, const xt::xexpression<E1>& input,
                                         const xt::xexpression<E2>& target, const kl_div_options& options = {});

        template <class E1, class E2>
        inline auto kl_div_forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                            const kl_div_options& options, bool with_target_grad)
        {
            return pointwise::forward_backward(input, target, options, with_target_grad);
        }

        template <class L, class O, class E1, class E2>
        inline void kl_div_forward_backward_out(L& loss, O& grad_input, const xt::xexpression<E1>& input,
                                                const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            pointwise::forward_backward_out(loss, grad_input, input, target, options);
        }

        template <class L, class O, class P, class E1, class E2>
        inline void kl_div_forward_backward_out(L& loss, O& grad_input, P& grad_target,
                                                const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                                const kl_div_options& options)
        {
            pointwise::forward_backward_out(loss, grad_input, grad_target, input, target, options);
        }
    }
}

#endif
