/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TOP_K_HPP
#define XLOSS_TOP_K_HPP

/// @file
/// A teacher given as its k most likely classes and their log-probabilities (offline distillation).

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)

#include "xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief A teacher as its top k classes per row: `ids` (integers, shape (rows..., k)) and their
         *        log-probabilities `log_probs` (same shape), made by top_k(); it refers to both, which must
         *        outlive it. ForwardKLLoss takes it in place of the teacher's logits.
         */
        template <class I, class L>
        struct top_k_teacher
        {
            const I& ids;       ///< the k classes of each row
            const L& log_probs; ///< their log-probabilities
        };

        /// @brief The teacher given as its top k classes and their log-probabilities (see top_k_teacher).
        template <class I, class L>
        inline top_k_teacher<I, L> top_k(const xt::xexpression<I>& ids, const xt::xexpression<L>& log_probs) noexcept
        {
            return {ids.derived_cast(), log_probs.derived_cast()};
        }

        template <class T>
        struct is_top_k_teacher : std::false_type
        {
        };

        template <class I, class L>
        struct is_top_k_teacher<top_k_teacher<I, L>> : std::true_type
        {
        };
    }
}

#endif
