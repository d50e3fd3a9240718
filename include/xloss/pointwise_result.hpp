/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_POINTWISE_RESULT_HPP
#define XLOSS_POINTWISE_RESULT_HPP

/// @file
/// What a pointwise loss's fused forward and backward returns (kl_div_forward_backward()'s).

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The loss and the gradients of a pointwise loss that ends the computation
         *        (grad_output = 1).
         */
        template <class V>
        struct pointwise_result
        {
            xt::xarray<V> loss;       ///< as the loss's call returns it (kl_div())
            xt::xarray<V> grad_input; ///< as its backward with grad_output 1 returns it
            xt::xarray<V>
                grad_target; ///< as its target backward with grad_output 1 returns it; shape (0) unless asked for
        };
    }
}

#endif
