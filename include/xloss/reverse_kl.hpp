/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_REVERSE_KL_HPP
#define XLOSS_REVERSE_KL_HPP

/// @file
/// The reverse KL divergence KL(student || teacher) from logits, with token labels.

#include "distill_options.hpp"
#include "divergence_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The reverse KL divergence `T^2 KL(Q || P)`, Q = softmax(s / T) the student's, P = softmax(t / T) the
         * teacher's, per row.
         *
         * torchtune's `ReverseKLLoss`: a class the teacher masks (-inf logit) contributes 0, as
         * torchtune masks it, rather than making the row infinite.
         * Methods: `loss(s, t[, labels])`, `backward(s, t[, labels])`, `backward(s, t, labels,
         * grad_output)` (labels may be xloss::all_rows), `forward_backward(s, t[, labels])`,
         * `forward_backward_out(loss, grad_student, s, t[, labels])`; see divergence_loss.
         *
         * @code
         * xloss::ReverseKLLoss loss(xloss::distill_options().temperature(2.0));
         * xt::xarray<double> s = {{2., 0.5, -1.}}, t = {{1.5, 1., -2.}};
         * auto r = loss.forward_backward(s, t);  // r.loss, r.grad_student
         * @endcode
         */
        using ReverseKLLoss = divergence_loss<detail::reverse_kl_policy, distill_options>;

        /// @brief The reverse KL divergence of the rows of the logits (see ReverseKLLoss).
        template <class S, class T>
        inline auto reverse_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                               const distill_options& options = distill_options())
        {
            return ReverseKLLoss(options)(student_logits, teacher_logits);
        }

        /// @brief The reverse KL divergence over the rows whose label is not `options.ignore_index()`.
        template <class S, class T, class L>
        inline auto reverse_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                               const xt::xexpression<L>& labels, const distill_options& options = distill_options())
        {
            return ReverseKLLoss(options)(student_logits, teacher_logits, labels);
        }
    }
}

#endif
