/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_OUT_HPP
#define XLOSS_KL_DIV_OUT_HPP

/// @file
/// The KL-divergence loss, its gradients and the fused pass, written into
/// containers the caller provides: no allocation in a training loop.

#include <algorithm>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/kl_div/definition.hpp"
#include "kl_div_options.hpp"
#include "pointwise_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief kl_div() written into `out`, allocating nothing.
         *
         * @param out for `reduction::none`, a container of the loss's (broadcast) shape; for a reduced
         *        loss, a 0-d container or a float or double variable
         * @return out
         * @throw std::invalid_argument, leaving `out` untouched, if the shapes do not broadcast or
         *        `out` does not have the loss's shape
         *
         * Allocation-free when `out` is contiguous row-major of the loss's value type (any container,
         * or a scalar); otherwise the loss is computed into a temporary and assigned.
         */
        template <class O, class E1, class E2>
        O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                      const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_backward() written into `grad_input`, which must have the input's shape.
         * @return grad_input
         * @throw std::invalid_argument, leaving `grad_input` untouched, for shapes that do not fit
         *
         * Allocation-free when input and target have the same shape and `grad_input` is contiguous
         * row-major of the loss's value type.
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                               const xt::xexpression<E2>& target, const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_target_backward() written into `grad_target`, which must have the target's shape.
         * @return grad_target
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options = {});

        template <class O, class E1, class E2>
        inline O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const kl_div_options& options)
        {
            return pointwise::loss_out(out, input, target, options);
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            return pointwise::backward_out(grad_input, grad_output, input, target, options);
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                             const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            return pointwise::target_backward_out(grad_target, grad_output, input, target, options);
        }
    }
}

#endif
