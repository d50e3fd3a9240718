/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_ROW_INPUT_HPP
#define XLOSS_ROW_INPUT_HPP

/// @file
/// What the rows of a row loss's arguments hold (logits or log-probabilities), for the options and
/// the row engine alike.

#include "detail/core/vocabulary.hpp"

#endif
