/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_POLICY_HPP
#define XLOSS_DETAIL_ENGINE_ROW_POLICY_HPP

// What the row engine asks of a divergence D = sum_j f(p_j, q_j) between the teacher's
// distribution P and the student's Q along a row: a row policy is a callable
//   divergence_terms<B> operator()(log p, log q, p, q) const
// giving, per class, the term f(p, q), the student's pull q df/dq and the teacher's pull p df/dp
// (the engine turns pulls into gradients through the softmax), plus a `name`.
//
// A policy may also offer a loss-only phase that needs no pass of its own: with the shifted,
// scaled logits a = (t - max t) / T and b = (s - max s) / T and their exponentials, a pair of
// `shifted_sums` taken in the engine's partition-sum pass, `row_value` turning them and the
// two partition sums into the row's divergence, and `pull_sums` giving the sums of the pulls
// from them. The engine then reads a row for the loss twice (max, sums) instead of three times,
// and writes gradients in one more pass.

#include <type_traits>
#include <utility>

#include "../../xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The pointwise values of one class for the row engine.
            template <class B>
            struct divergence_terms
            {
                B term;
                B pull_student;
                B pull_teacher;
            };

            /// What a loss-only phase sums over a row, batch by batch.
            template <class B>
            struct shifted_sums
            {
                B first;
                B second;
            };

            /// The sums over a row of the student's and the teacher's pulls.
            struct row_pull_sums
            {
                double student;
                double teacher;
            };

            /// Whether Policy has the loss-only phase (shifted_sums and row_value).
            template <class Policy, class B, class = void>
            struct has_loss_phase : std::false_type
            {
            };

            template <class Policy, class B>
            struct has_loss_phase<Policy, B,
                                  std::void_t<decltype(std::declval<const Policy&>().shifted(
                                      std::declval<const B&>(), std::declval<const B&>(), std::declval<const B&>(),
                                      std::declval<const B&>()))>> : std::true_type
            {
            };
        }
    }
}

#endif
