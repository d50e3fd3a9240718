/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_REDUCTION_HPP
#define XLOSS_REDUCTION_HPP

/// @file
/// The reductions a loss applies to its pointwise terms.

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "detail/core/error.hpp"

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

    inline namespace XLOSS_ARCH_NAMESPACE
    {
        reduction parse_reduction(std::string_view name);
        constexpr bool is_valid(reduction r) noexcept;
        constexpr std::string_view to_string(reduction r) noexcept;
        constexpr reduction legacy_reduction(std::optional<bool> size_average, std::optional<bool> reduce) noexcept;

        /**
         * @brief Parses the name the Python frameworks use for a reduction.
         * @param name one of "none", "mean", "sum", "batchmean"
         * @return the matching enumerator
         * @throw std::invalid_argument for any other name; the message lists the valid ones
         */
        inline reduction parse_reduction(std::string_view name)
        {
            for (reduction r : {reduction::none, reduction::mean, reduction::sum, reduction::batchmean})
            {
                if (name == to_string(r))
                {
                    return r;
                }
            }
            detail::raise(std::invalid_argument("xloss: unknown reduction '" + std::string(name)
                                                + "'; valid reductions are 'none', 'mean', 'sum' and 'batchmean'"));
        }

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

        /**
         * @brief The reduction PyTorch's deprecated `size_average` and `reduce` arguments stand for.
         *
         * As PyTorch maps them: an absent argument counts as true; `reduce = false` gives `none`
         * whatever `size_average`; otherwise `size_average = false` gives `sum`, and `mean` else.
         * (In PyTorch, giving either argument overrides `reduction`; `batchmean` has no legacy form.)
         */
        constexpr reduction legacy_reduction(std::optional<bool> size_average, std::optional<bool> reduce) noexcept
        {
            if (!reduce.value_or(true))
            {
                return reduction::none;
            }
            return size_average.value_or(true) ? reduction::mean : reduction::sum;
        }
    }
}

#endif
