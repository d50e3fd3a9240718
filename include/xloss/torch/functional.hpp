/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TORCH_FUNCTIONAL_HPP
#define XLOSS_TORCH_FUNCTIONAL_HPP

/// @file
/// xloss's losses as functions of libtorch tensors, in torch::nn::functional's style: each returns a
/// tensor with a working grad_fn.

#include "../cross_entropy.hpp"
#include "../detail/torch/calls.hpp"
#include "../forward_kl.hpp"
#include "../generalized_jsd.hpp"
#include "../kl_div.hpp"
#include "../kl_div_loss.hpp"
#include "../reverse_kl.hpp"
#include "../symmetric_kl.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief xloss's losses over libtorch tensors, with autograd.
         *
         * Every function takes CPU tensors of any strides (contiguous ones are read in place) in
         * float, double, bfloat16 or half, and returns the loss in the input's dtype with a grad_fn
         * whose backward gives the input's (the student's) gradient, scaled by grad_output. A reduced
         * loss computes that gradient in its forward passes and keeps it for one backward; an
         * unreduced one computes it in backward. cross_entropy and the divergences read bfloat16
         * and half tensors in place (row by row into float; the loss and the gradient rounded to the
         * input's dtype, as libtorch's are); kl_div converts them to float first (by libtorch, a copy).
         * Not supported, each a clear error: CUDA tensors,
         * other dtypes, a gradient w.r.t. the target or teacher (detach it), double backward, and a
         * second backward through a reduced loss (retain_graph).
         *
         * Inside namespace xloss, libtorch's namespace needs its leading colons.
         */
        namespace torch
        {
            /// @brief kl_div (xloss::KLDivLoss) of `input` against `target`: torch::kl_div's arguments.
            inline ::torch::Tensor kl_div(const ::torch::Tensor& input, const ::torch::Tensor& target,
                                          const kl_div_options& options = kl_div_options())
            {
                return detail::torch_bridge::run<detail::torch_bridge::pointwise_call>(
                    xloss::KLDivLoss<>(options), "xloss::torch::kl_div", {input, "input"}, {target, "target"},
                    {::torch::Tensor(), "labels", false});
            }

            /**
             * @brief cross_entropy (xloss::CrossEntropyLoss) of the logits against integer labels, or
             *        against probability targets of the logits' shape and dtype (F::cross_entropy's
             *        soft labels; no gradient w.r.t. them).
             */
            inline ::torch::Tensor cross_entropy(const ::torch::Tensor& logits, const ::torch::Tensor& labels,
                                                 const cross_entropy_options& options = cross_entropy_options())
            {
                using detail::torch_bridge::named_tensor;
                const bool soft = labels.defined() && labels.is_floating_point();
                return detail::torch_bridge::run<detail::torch_bridge::cross_entropy_call>(
                    xloss::CrossEntropyLoss(options), "xloss::torch::cross_entropy", {logits, "logits"},
                    soft ? named_tensor{labels, "labels"} : named_tensor{::torch::Tensor(), "target", false},
                    soft ? named_tensor{::torch::Tensor(), "labels", false} : named_tensor{labels, "labels"});
            }

            /// @brief forward_kl (xloss::ForwardKLLoss) of the student's against the teacher's logits.
            inline ::torch::Tensor forward_kl(const ::torch::Tensor& student_logits,
                                              const ::torch::Tensor& teacher_logits,
                                              const distill_options& options = distill_options())
            {
                return detail::torch_bridge::divergence<xloss::ForwardKLLoss>(
                    "xloss::torch::forward_kl", student_logits, teacher_logits, ::torch::Tensor(), options);
            }

            /// @brief forward_kl with labels (ignore_index rows left out, and the hard part's labels).
            inline ::torch::Tensor forward_kl(const ::torch::Tensor& student_logits,
                                              const ::torch::Tensor& teacher_logits, const ::torch::Tensor& labels,
                                              const distill_options& options = distill_options())
            {
                return detail::torch_bridge::divergence<xloss::ForwardKLLoss>(
                    "xloss::torch::forward_kl", student_logits, teacher_logits, labels, options);
            }

            /**
             * @brief forward_kl from a teacher given as its top k classes per row: `teacher_ids` (any
             *        integer dtype) and `teacher_log_probs` (the student's dtype), both (rows..., k), against
             *        the student's full softmax over the last axis (xloss::ForwardKLLoss with top_k; see
             *        top_k_tail for the mass outside the k classes). `labels` may be undefined (every row).
             */
            inline ::torch::Tensor forward_kl_top_k(const ::torch::Tensor& student_logits,
                                                    const ::torch::Tensor& teacher_ids,
                                                    const ::torch::Tensor& teacher_log_probs,
                                                    const ::torch::Tensor& labels = ::torch::Tensor(),
                                                    const distill_options& options = distill_options())
            {
                namespace bridge = detail::torch_bridge;
                constexpr const char* func = "xloss::torch::forward_kl_top_k";
                bridge::check_labels(teacher_ids, func, "teacher_ids");
                return bridge::run<bridge::top_k_call>(
                    bridge::top_k_loss{xloss::ForwardKLLoss(options), teacher_ids.to(::torch::kLong).contiguous()},
                    func, {student_logits, "student_logits"}, {teacher_log_probs, "teacher_log_probs"},
                    {labels, "labels", false});
            }

            /// @brief reverse_kl (xloss::ReverseKLLoss) of the student's against the teacher's logits.
            inline ::torch::Tensor reverse_kl(const ::torch::Tensor& student_logits,
                                              const ::torch::Tensor& teacher_logits,
                                              const distill_options& options = distill_options())
            {
                return detail::torch_bridge::divergence<xloss::ReverseKLLoss>(
                    "xloss::torch::reverse_kl", student_logits, teacher_logits, ::torch::Tensor(), options);
            }

            /// @brief reverse_kl with labels.
            inline ::torch::Tensor reverse_kl(const ::torch::Tensor& student_logits,
                                              const ::torch::Tensor& teacher_logits, const ::torch::Tensor& labels,
                                              const distill_options& options = distill_options())
            {
                return detail::torch_bridge::divergence<xloss::ReverseKLLoss>(
                    "xloss::torch::reverse_kl", student_logits, teacher_logits, labels, options);
            }

            /// @brief generalized_jsd (xloss::GeneralizedJSDLoss) of the student's against the teacher's logits.
            inline ::torch::Tensor generalized_jsd(const ::torch::Tensor& student_logits,
                                                   const ::torch::Tensor& teacher_logits,
                                                   const jsd_options& options = jsd_options())
            {
                return detail::torch_bridge::divergence<xloss::GeneralizedJSDLoss>(
                    "xloss::torch::generalized_jsd", student_logits, teacher_logits, ::torch::Tensor(), options);
            }

            /// @brief generalized_jsd with labels.
            inline ::torch::Tensor generalized_jsd(const ::torch::Tensor& student_logits,
                                                   const ::torch::Tensor& teacher_logits, const ::torch::Tensor& labels,
                                                   const jsd_options& options = jsd_options())
            {
                return detail::torch_bridge::divergence<xloss::GeneralizedJSDLoss>(
                    "xloss::torch::generalized_jsd", student_logits, teacher_logits, labels, options);
            }

            /// @brief symmetric_kl (xloss::SymmetricKLLoss) of the student's against the teacher's logits.
            inline ::torch::Tensor symmetric_kl(const ::torch::Tensor& student_logits,
                                                const ::torch::Tensor& teacher_logits,
                                                const symmetric_kl_options& options = symmetric_kl_options())
            {
                return detail::torch_bridge::divergence<xloss::SymmetricKLLoss>(
                    "xloss::torch::symmetric_kl", student_logits, teacher_logits, ::torch::Tensor(), options);
            }

            /// @brief symmetric_kl with labels.
            inline ::torch::Tensor symmetric_kl(const ::torch::Tensor& student_logits,
                                                const ::torch::Tensor& teacher_logits, const ::torch::Tensor& labels,
                                                const symmetric_kl_options& options = symmetric_kl_options())
            {
                return detail::torch_bridge::divergence<xloss::SymmetricKLLoss>(
                    "xloss::torch::symmetric_kl", student_logits, teacher_logits, labels, options);
            }
        }
    }
}

#endif
