/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_RESULT_HPP
#define XLOSS_KL_DIV_RESULT_HPP

/// @file
/// What kl_div_forward_backward() and kl_div_with_logits_forward_backward() return.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief The loss and the gradients of a loss that ends the computation (grad_output = 1).
         */
        template <class V>
        struct kl_div_forward_backward_result
        {
            xt::xarray<V> loss;        ///< as kl_div() returns it
            xt::xarray<V> grad_input;  ///< as kl_div_backward(1, ...) returns it
            xt::xarray<V> grad_target; ///< as kl_div_target_backward(1, ...) returns it; shape (0) unless asked for
        };
    }
}

#endif
