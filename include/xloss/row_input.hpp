/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_ROW_INPUT_HPP
#define XLOSS_ROW_INPUT_HPP

/// @file
/// What the rows of a row loss's arguments hold (logits or log-probabilities), for the options and
/// the row engine alike.

namespace xloss
{
    /// @brief What the rows of a divergence's two arguments hold.
    enum class row_input
    {
        logits,   ///< logits: the divergence is between softmax(t / T) and softmax(s / T)
        log_probs ///< log-probabilities log p and log q, used as they are (no softmax; temperature 1)
    };
}

#endif
