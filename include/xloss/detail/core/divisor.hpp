/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_DIVISOR_HPP
#define XLOSS_DETAIL_CORE_DIVISOR_HPP

// What every loss divides its reduced sum by.

#include "../../xloss_config.hpp"
#include "vocabulary.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * The divisor of reduction r: for mean the count it averages over (elements, or kept
             * rows), for batchmean the batch size, 1 for sum and none; a `given` divisor (the
             * options' `divisor`, > 0: data parallelism) replaces the count of mean and batchmean.
             */
            inline double reduction_divisor(reduction r, double given, double mean_count, double batch_count) noexcept
            {
                switch (r)
                {
                    case reduction::mean:
                        return given > 0. ? given : mean_count;
                    case reduction::batchmean:
                        return given > 0. ? given : batch_count;
                    default:
                        return 1.;
                }
            }
        }
    }
}

#endif
