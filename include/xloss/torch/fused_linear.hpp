/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TORCH_FUSED_LINEAR_HPP
#define XLOSS_TORCH_FUSED_LINEAR_HPP

/// @file
/// The fused linear cross-entropy and divergences over libtorch tensors, with autograd: the loss of
/// `hidden @ weight^T + bias` computed chunk by chunk, no logits kept. Not in xloss/torch.hpp: link
/// both xloss::torch and xloss::linear (the system's BLAS).

#include "../detail/torch/linear_function.hpp"
#include "../fused_linear.hpp"
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
            inline ::torch::Tensor fused_linear_cross_entropy(
                const ::torch::Tensor& hidden, const ::torch::Tensor& weight, const ::torch::Tensor& labels,
                const cross_entropy_options& options = cross_entropy_options(),
                const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::run_linear(xloss::FusedLinearCrossEntropyLoss(options, linear),
                                                               "xloss::torch::fused_linear_cross_entropy", hidden,
                                                               weight, ::torch::Tensor(), labels);
            }

            /// @brief fused_linear_cross_entropy through an output layer with a bias (classes).
            inline ::torch::Tensor fused_linear_cross_entropy(
                const ::torch::Tensor& hidden, const ::torch::Tensor& weight, const ::torch::Tensor& bias,
                const ::torch::Tensor& labels, const cross_entropy_options& options = cross_entropy_options(),
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
                explicit FusedLinearCrossEntropyLossImpl(
                    const cross_entropy_options& options_ = cross_entropy_options(),
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

            /**
             * @name Fused linear divergences
             * The divergences of the student's logits `hidden W^T` from the teacher's `teacher_hidden
             * teacher_weight^T` (its hidden size may differ; a teacher with more classes gives its first
             * ones), computed chunk by chunk without either (tokens x classes) array (xloss's
             * fused_linear_divergence_loss): Liger-Kernel's `LigerFusedLinearJSD` and its kin in libtorch.
             * Gradients of the student's hidden states and weight, kept by the forward; the teacher's
             * tensors get none (one that requires grad is an error). `labels` may be undefined (every
             * row). Reduced losses only.
             */
            ///@{
            /// The forward KL (xloss::FusedLinearForwardKLLoss).
            inline ::torch::Tensor fused_linear_forward_kl(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                           const ::torch::Tensor& teacher_hidden,
                                                           const ::torch::Tensor& teacher_weight,
                                                           const ::torch::Tensor& labels = ::torch::Tensor(),
                                                           const distill_options& options = distill_options(),
                                                           const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::fused_linear_divergence<xloss::FusedLinearForwardKLLoss>(
                    "xloss::torch::fused_linear_forward_kl", hidden, weight, teacher_hidden, teacher_weight, labels,
                    options, linear);
            }

            /// The reverse KL (xloss::FusedLinearReverseKLLoss).
            inline ::torch::Tensor fused_linear_reverse_kl(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                           const ::torch::Tensor& teacher_hidden,
                                                           const ::torch::Tensor& teacher_weight,
                                                           const ::torch::Tensor& labels = ::torch::Tensor(),
                                                           const distill_options& options = distill_options(),
                                                           const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::fused_linear_divergence<xloss::FusedLinearReverseKLLoss>(
                    "xloss::torch::fused_linear_reverse_kl", hidden, weight, teacher_hidden, teacher_weight, labels,
                    options, linear);
            }

            /// The generalized JSD (xloss::FusedLinearGeneralizedJSDLoss; Liger's LigerFusedLinearJSD).
            inline ::torch::Tensor fused_linear_generalized_jsd(
                const ::torch::Tensor& hidden, const ::torch::Tensor& weight, const ::torch::Tensor& teacher_hidden,
                const ::torch::Tensor& teacher_weight, const ::torch::Tensor& labels = ::torch::Tensor(),
                const jsd_options& options = jsd_options(), const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::fused_linear_divergence<xloss::FusedLinearGeneralizedJSDLoss>(
                    "xloss::torch::fused_linear_generalized_jsd", hidden, weight, teacher_hidden, teacher_weight,
                    labels, options, linear);
            }

            /// The symmetric KL (xloss::FusedLinearSymmetricKLLoss).
            inline ::torch::Tensor fused_linear_symmetric_kl(
                const ::torch::Tensor& hidden, const ::torch::Tensor& weight, const ::torch::Tensor& teacher_hidden,
                const ::torch::Tensor& teacher_weight, const ::torch::Tensor& labels = ::torch::Tensor(),
                const symmetric_kl_options& options = symmetric_kl_options(),
                const fused_linear_options& linear = fused_linear_options())
            {
                return xloss::detail::torch_bridge::fused_linear_divergence<xloss::FusedLinearSymmetricKLLoss>(
                    "xloss::torch::fused_linear_symmetric_kl", hidden, weight, teacher_hidden, teacher_weight, labels,
                    options, linear);
            }
            ///@}

            /// @brief A fused linear divergence as a module: forward(hidden, weight, teacher_hidden,
            ///        teacher_weight[, labels]).
            template <class Loss>
            class FusedLinearDivergenceLossImpl
                : public loss_module_impl<typename Loss::options_type, FusedLinearDivergenceLossImpl<Loss>>
            {
            public:

                /// A loss with the given options.
                explicit FusedLinearDivergenceLossImpl(
                    const typename Loss::options_type& options_ = typename Loss::options_type(),
                    const fused_linear_options& linear_ = fused_linear_options())
                    : loss_module_impl<typename Loss::options_type, FusedLinearDivergenceLossImpl<Loss>>(options_)
                    , linear(linear_)
                {
                }

                /// The loss with the module's options (`labels` undefined: every row).
                ::torch::Tensor forward(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                        const ::torch::Tensor& teacher_hidden, const ::torch::Tensor& teacher_weight,
                                        const ::torch::Tensor& labels = ::torch::Tensor())
                {
                    return xloss::detail::torch_bridge::fused_linear_divergence<Loss>(
                        xloss::detail::torch_bridge::fused_linear_name<Loss>::get(), hidden, weight, teacher_hidden,
                        teacher_weight, labels, this->options, linear);
                }

                /// The module's name, as libtorch prints modules.
                void pretty_print(std::ostream& stream) const override
                {
                    stream << xloss::detail::torch_bridge::fused_linear_name<Loss>::get();
                }

                fused_linear_options linear; ///< the chunking and output options
            };

            using FusedLinearForwardKLLoss = loss_module<
                FusedLinearDivergenceLossImpl<xloss::FusedLinearForwardKLLoss>>; ///< fused_linear_forward_kl
            using FusedLinearReverseKLLoss = loss_module<
                FusedLinearDivergenceLossImpl<xloss::FusedLinearReverseKLLoss>>; ///< fused_linear_reverse_kl
            using FusedLinearGeneralizedJSDLoss = loss_module<
                FusedLinearDivergenceLossImpl<xloss::FusedLinearGeneralizedJSDLoss>>; ///< Liger's LigerFusedLinearJSD
            using FusedLinearSymmetricKLLoss = loss_module<
                FusedLinearDivergenceLossImpl<xloss::FusedLinearSymmetricKLLoss>>; ///< fused_linear_symmetric_kl
        }
    }
}

#endif
