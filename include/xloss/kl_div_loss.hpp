/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_LOSS_HPP
#define XLOSS_KL_DIV_LOSS_HPP

/// @file
/// The KL-divergence loss as a module, like torch.nn.KLDivLoss.

#include <string_view>

#include "detail/kl_div/definition.hpp"
#include "kl_div.hpp"
#include "kl_div_forward_backward.hpp"
#include "kl_div_options.hpp"
#include "pointwise_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The KL-divergence loss as a functor holding its options.
         *
         * `loss(input, target)` is `kl_div(input, target, loss.options())`;
         * `loss.backward(input, target[, grad_output])` is the gradient w.r.t. the input,
         * `loss.target_backward(...)` the gradient w.r.t. the target (grad_output defaults to 1),
         * `loss.forward_backward(input, target)` the loss and the input gradient in one pass;
         * every member but log_target() comes from pointwise_loss, the module of every pointwise loss.
         *
         * @tparam T the value type the loss computes in; `void` (the default) promotes the
         *         arguments' types (float, or double as soon as one is double)
         *
         * @code
         * xloss::KLDivLoss loss(xloss::reduction::batchmean);  // or KLDivLoss loss("batchmean");
         * auto value = loss(x, t);           // 0-d xt::xarray
         * auto grad = loss.backward(x, t);   // shape of x
         * @endcode
         */
        template <class T = void>
        class KLDivLoss : public pointwise_loss<kl_div_options, T>
        {
            using base = pointwise_loss<kl_div_options, T>;

        public:

            /// The options class.
            using options_type = kl_div_options;

            /// A loss with the given reduction and target space (defaults: mean, probabilities).
            explicit KLDivLoss(xloss::reduction r = xloss::reduction::mean, bool log_target = false) noexcept
                : base(options_type(r, log_target))
            {
            }

            /// A loss with the reduction the Python frameworks name ("none", "mean", "sum", "batchmean").
            /// @throw std::invalid_argument for any other name
            explicit KLDivLoss(std::string_view r, bool log_target = false)
                : base(options_type(r, log_target))
            {
            }

            /// A loss with the given options.
            explicit KLDivLoss(const options_type& options) noexcept
                : base(options)
            {
            }

            /// Whether the target holds log-probabilities.
            bool log_target() const noexcept
            {
                return this->options().log_target();
            }
        };
    }
}

#endif
