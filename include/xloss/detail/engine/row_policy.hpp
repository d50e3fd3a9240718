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
        }
    }
}

#endif
