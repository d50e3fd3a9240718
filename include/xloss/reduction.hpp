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
#include "detail/core/vocabulary.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        reduction parse_reduction(std::string_view name);
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
