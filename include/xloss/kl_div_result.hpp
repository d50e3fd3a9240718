/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_RESULT_HPP
#define XLOSS_KL_DIV_RESULT_HPP

/// @file
/// What kl_div_forward_backward() and kl_div_with_logits_forward_backward() return.

#include "pointwise_result.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief The loss and the gradients of a loss that ends the computation (grad_output = 1):
         *        loss, grad_input, grad_target (pointwise_result).
         */
        template <class V>
        using kl_div_forward_backward_result = pointwise_result<V>;
    }
}

#endif
