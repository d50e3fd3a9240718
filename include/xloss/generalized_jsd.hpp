/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_GENERALIZED_JSD_HPP
#define XLOSS_GENERALIZED_JSD_HPP

/// @file
/// The generalized Jensen-Shannon divergence of GKD from logits, with token labels.

#include "distill_options.hpp"
#include "divergence_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The generalized Jensen-Shannon divergence `T^2 (beta KL(P || M) + (1 - beta) KL(Q || M))`, M = beta P
         * + (1 - beta) Q, per row.
         *
         * TRL's `generalized_jsd_loss` and Liger's `LigerJSD`: P the teacher's softmax, Q the student's;
         * `beta = 0` is the forward KL(P || Q) and `beta = 1` the reverse KL(Q || P), TRL's convention.
         * Methods: `loss(s, t[, labels])`, `backward(s, t[, labels])`, `backward(s, t, labels,
         * grad_output)` (labels may be xloss::all_rows), `forward_backward(s, t[, labels])`,
         * `forward_backward_out(loss, grad_student, s, t[, labels])`; see divergence_loss.
         *
         * @code
         * xloss::GeneralizedJSDLoss loss(xloss::jsd_options().beta(0.5));
         * xt::xarray<float> s = {{2.f, 0.5f, -1.f}}, t = {{1.5f, 1.f, -2.f}};
         * float value = loss(s, t)();
         * @endcode
         */
        using GeneralizedJSDLoss = divergence_loss<detail::jsd_policy, jsd_options>;

        /// @brief The generalized Jensen-Shannon divergence of the rows of the logits (see GeneralizedJSDLoss).
        template <class S, class T>
        inline auto generalized_jsd(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                                    const jsd_options& options = jsd_options())
        {
            return GeneralizedJSDLoss(options)(student_logits, teacher_logits);
        }

        /// @brief The generalized Jensen-Shannon divergence over the rows whose label is not `options.ignore_index()`.
        template <class S, class T, class L>
        inline auto generalized_jsd(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                                    const xt::xexpression<L>& labels, const jsd_options& options = jsd_options())
        {
            return GeneralizedJSDLoss(options)(student_logits, teacher_logits, labels);
        }
    }
}

#endif
