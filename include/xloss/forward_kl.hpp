/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FORWARD_KL_HPP
#define XLOSS_FORWARD_KL_HPP

/// @file
/// The forward KL divergence KL(teacher || student) from logits, with token labels.

#include "distill_options.hpp"
#include "divergence_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The forward KL divergence `T^2 KL(P || Q)`, P = softmax(t / T) the teacher's, Q = softmax(s / T) the
         * student's, per row.
         *
         * What kl_div_with_logits() computes, with labels and a per-token `mean`. torchtune's
         * `ForwardKLLoss` (T = 1) computes the cross-entropy -sum p log q instead: its values are these
         * plus the teacher's entropy, its student gradients the same. A class the teacher masks (-inf)
         * contributes 0; one only the student masks makes the row +inf (torchtune counts it as 0).
         * Methods: `loss(s, t[, labels])`, `backward(s, t[, labels])`, `backward(s, t, labels,
         * grad_output)` (labels may be xloss::all_rows), `forward_backward(s, t[, labels])`,
         * `forward_backward_out(loss, grad_student, s, t[, labels])`; see divergence_loss.
         *
         * @code
         * xt::xarray<float> s = {{2.f, 0.5f, -1.f}, {0.f, 1.f, 2.f}}, t = {{1.5f, 1.f, -2.f}, {0.f, 0.f, 0.f}};
         * xt::xarray<int> labels = {7, -100};  // the second token is padding
         * float loss = xloss::forward_kl(s, t, labels)();  // mean over the kept token
         * @endcode
         */
        using ForwardKLLoss = divergence_loss<detail::forward_kl_policy, distill_options>;

        /// @brief The forward KL divergence of the rows of the logits (see ForwardKLLoss).
        template <class S, class T>
        inline auto forward_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                               const distill_options& options = distill_options())
        {
            return ForwardKLLoss(options)(student_logits, teacher_logits);
        }

        /// @brief The forward KL divergence over the rows whose label is not `options.ignore_index()`.
        template <class S, class T, class L>
        inline auto forward_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                               const xt::xexpression<L>& labels, const distill_options& options = distill_options())
        {
            return ForwardKLLoss(options)(student_logits, teacher_logits, labels);
        }
    }
}

#endif
