/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_SYMMETRIC_KL_HPP
#define XLOSS_SYMMETRIC_KL_HPP

/// @file
/// torchtune's symmetric KL divergence from logits, with token labels.

#include "distill_options.hpp"
#include "divergence_loss.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The symmetric KL divergence `T^2 (ratio KL(P || Q) + (1 - ratio) KL(Q || P))` per row, P =
         * softmax(t / T) the teacher's, Q = softmax(s / T) the student's.
         *
         * torchtune's `SymmetricKLLoss` (`sym_kl_ratio`): the forward part as ForwardKLLoss (torchtune's
         * forward part is the cross-entropy, so its values are these plus ratio times the teacher's
         * entropy, its student gradients the same), the reverse part as ReverseKLLoss (over the classes
         * the teacher keeps). Methods as ForwardKLLoss; see divergence_loss.
         *
         * @code
         * xloss::SymmetricKLLoss loss(xloss::symmetric_kl_options().ratio(0.7));
         * xt::xarray<float> s = {{2.f, 0.5f, -1.f}}, t = {{1.5f, 1.f, -2.f}};
         * float value = loss(s, t)();
         * @endcode
         */
        using SymmetricKLLoss = divergence_loss<detail::symmetric_kl_policy, symmetric_kl_options>;

        /// @brief The symmetric KL divergence of the rows of the logits (see SymmetricKLLoss).
        template <class S, class T>
        inline auto symmetric_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                                 const symmetric_kl_options& options = symmetric_kl_options())
        {
            return SymmetricKLLoss(options)(student_logits, teacher_logits);
        }

        /// @brief The symmetric KL divergence over the rows whose label is not `options.ignore_index()`.
        template <class S, class T, class L>
        inline auto symmetric_kl(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                                 const xt::xexpression<L>& labels,
                                 const symmetric_kl_options& options = symmetric_kl_options())
        {
            return SymmetricKLLoss(options)(student_logits, teacher_logits, labels);
        }
    }
}

#endif
