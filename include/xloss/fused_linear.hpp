/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FUSED_LINEAR_HPP
#define XLOSS_FUSED_LINEAR_HPP

/// @file
/// The fused linear losses: losses of a linear layer's logits computed from its input, chunk by chunk,
/// on the system's BLAS. Not in xloss.hpp: link CMake's xloss::linear (xloss and BLAS::BLAS).

#include "fused_linear_cross_entropy.hpp"
#include "fused_linear_divergence.hpp"
#include "fused_linear_options.hpp"
#include "fused_linear_result.hpp"
#include "linear_head.hpp"

#endif
