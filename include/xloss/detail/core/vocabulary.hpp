/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_VOCABULARY_HPP
#define XLOSS_DETAIL_CORE_VOCABULARY_HPP

// The enumerations that the public options and the engines share, on the floor both include
// (public names; reduction.hpp and row_input.hpp are their public headers).

#include <string_view>

#include "../../xloss_config.hpp"

namespace xloss
{
    /**
     * @brief How a loss reduces its pointwise terms, as in PyTorch.
     */
    enum class reduction
    {
        none,     ///< no reduction: one term per element of the broadcast shape
        mean,     ///< sum divided by the number of elements (not the KL divergence)
        sum,      ///< sum of all terms
        batchmean ///< sum divided by the input's first dimension (the KL divergence per sample)
    };

    /// @brief What the rows of a divergence's two arguments hold.
    enum class row_input
    {
        logits,   ///< logits: the divergence is between softmax(t / T) and softmax(s / T)
        log_probs ///< log-probabilities log p and log q, used as they are (no softmax; temperature 1)
    };

    /// @brief Whether a divergence computed at temperature T is scaled by T^2.
    enum class temperature_scale
    {
        squared, ///< T^2 D: Hinton's scaling, which keeps the gradients' size as T changes (torchtune's
                 ///< recipes multiply by it; xloss's default)
        none     ///< D itself: TRL's generalized_jsd_loss and Liger-Kernel's distillation losses
    };

    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief Whether `r` is one of the four enumerators (and not, say, `static_cast<reduction>(7)`).
         */
        constexpr bool is_valid(reduction r) noexcept
        {
            return r == reduction::none || r == reduction::mean || r == reduction::sum || r == reduction::batchmean;
        }

        /**
         * @brief The name of a reduction, as parse_reduction accepts it ("unknown" for a value that is not
         *        an enumerator: every loss rejects such a value with std::invalid_argument).
         */
        constexpr std::string_view to_string(reduction r) noexcept
        {
            switch (r)
            {
                case reduction::none:
                    return "none";
                case reduction::mean:
                    return "mean";
                case reduction::sum:
                    return "sum";
                case reduction::batchmean:
                    return "batchmean";
            }
            return "unknown";
        }

    }
}

#endif
