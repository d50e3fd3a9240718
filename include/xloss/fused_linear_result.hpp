/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FUSED_LINEAR_RESULT_HPP
#define XLOSS_FUSED_LINEAR_RESULT_HPP

/// @file
/// What a fused linear loss's forward and backward return, and the scratch it keeps between calls.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/linear/chunks.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /// @brief The loss of a fused linear loss and its gradients w.r.t. the layer's inputs.
        template <class V>
        struct fused_linear_result
        {
            xt::xarray<V> loss;        ///< a 0-d array, or for `none` one value per row
            xt::xarray<V> grad_hidden; ///< of the hidden states' shape
            xt::xarray<V> grad_weight; ///< (classes, hidden)
            xt::xarray<V> grad_bias;   ///< (classes), or shape (0) for a layer without a bias
        };

        /**
         * @brief Scratch of the fused linear losses kept by the caller between calls (training steps):
         *        a call allocates only when it needs more than any call before it. `bytes()` is most of
         *        what it holds: two (chunk x classes) and two (chunk x hidden) arrays, a teacher's chunk
         *        of logits and hidden states, the chunk's losses and labels, the kept rows' list; the
         *        row passes' own scratch (for the divergences, two rows of classes per thread) besides.
         */
        template <class V>
        using fused_linear_workspace = detail::linear_workspace<V>;
    }
}

#endif
