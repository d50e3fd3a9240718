/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TORCH_FUSED_LINEAR_HPP
#define XLOSS_TORCH_FUSED_LINEAR_HPP

/// @file
/// The fused linear cross-entropy over libtorch tensors, with autograd: the loss of
/// `hidden @ weight^T + bias` computed chunk by chunk, no logits kept. Not in xloss/torch.hpp: link
/// both xloss::torch and xloss::linear (the system's BLAS).

#include "../fused_linear.hpp"
#include "../detail/torch/linear_function.hpp"
#include "modules.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace torch
        {
            /**
             * @brief fused_linear_cross_entropy (xloss::FusedLinearCrossEntropyLoss) of the hidden states
             *        (rows..., hidden) through the output layer `weight` (classes, hidden), against labels.
             *
             * Liger-Kernel's `LigerFusedLinearCrossEntropyLoss` in libtorch: the forward computes the
             * gradients of `hidden`, `weight` (and the bias) in its chunks and keeps them for backward.
             * Reduced losses only (mean, sum); the tensors' conditions are xloss::torch's (see kl_div).
             */
            inline ::torch::Tensor fused_linear_cross_entropy(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                              const ::torch::Tensor& labels,
                                                              const cross_entropy_options& options = cross_entropy_options(),
                                                              const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::run_linear(xloss::FusedLinearCrossEntropyLoss(options, linear),
                                                               "xloss::torch::fused_linear_cross_entropy", hidden,
                                                               weight, ::torch::Tensor(), labels);
            }

            /// @brief fused_linear_cross_entropy through an output layer with a bias (classes).
            inline ::torch::Tensor fused_linear_cross_entropy(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                              const ::torch::Tensor& bias, const ::torch::Tensor& labels,
                                                              const cross_entropy_options& options = cross_entropy_options(),
                                                              const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::run_linear(xloss::FusedLinearCrossEntropyLoss(options, linear),
                                                               "xloss::torch::fused_linear_cross_entropy", hidden,
                                                               weight, bias, labels);
            }

            /// @brief fused_linear_cross_entropy as a module: forward(hidden, weight, labels[, bias]).
            class FusedLinearCrossEntropyLossImpl
                : public loss_module_impl<cross_entropy_options, FusedLinearCrossEntropyLossImpl>
            {
            public:

                /// A loss with the given options.
                explicit FusedLinearCrossEntropyLossImpl(const cross_entropy_options& options_ = cross_entropy_options(),
                                                         const fused_linear_options& linear_ = fused_linear_options())
                    : loss_module_impl(options_)
                    , linear(linear_)
                {
                }

                /// The loss with the module's options (`bias` undefined: a layer without one).
                ::torch::Tensor forward(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                        const ::torch::Tensor& labels, const ::torch::Tensor& bias = ::torch::Tensor())
                {
                    return bias.defined() ? fused_linear_cross_entropy(hidden, weight, bias, labels, options, linear)
                                          : fused_linear_cross_entropy(hidden, weight, labels, options, linear);
                }

                /// The module's name, as libtorch prints modules.
                void pretty_print(std::ostream& stream) const override
                {
                    stream << "xloss::torch::FusedLinearCrossEntropyLoss";
                }

                fused_linear_options linear; ///< the chunking and output options
            };

            /// Liger-Kernel's LigerFusedLinearCrossEntropyLoss's counterpart.
            using FusedLinearCrossEntropyLoss = loss_module<FusedLinearCrossEntropyLossImpl>;
        }
    }
}

#endif
