/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DIVERGENCE_RESULT_HPP
#define XLOSS_DIVERGENCE_RESULT_HPP

/// @file
/// What a forward_backward() call of a divergence from logits returns.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /// @brief The loss and the gradients of one forward_backward() call.
        template <class V>
        struct divergence_result
        {
            xt::xarray<V> loss;         ///< the loss: 0-d, or one value per row for `none`
            xt::xarray<V> grad_student; ///< d loss / d student_logits
            xt::xarray<V> grad_teacher; ///< d loss / d teacher_logits, when asked for (else shape (0))
            /// With weight_hard > 0 (else shape (0)): the divergence alone (T^2 D, or D), reduced as the
            /// loss, so that loss = weight_soft soft_loss + weight_hard hard_loss.
            xt::xarray<V> soft_loss;
            /// With weight_hard > 0 (else shape (0)): the cross-entropy of the student's logits with the
            /// labels, reduced as the loss.
            xt::xarray<V> hard_loss;
        };
    }
}

#endif
