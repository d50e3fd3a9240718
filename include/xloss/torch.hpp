/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TORCH_HPP
#define XLOSS_TORCH_HPP

/// @file
/// xloss for libtorch code: the losses over torch::Tensor with autograd (xloss::torch::kl_div, ...)
/// and as torch::nn modules (xloss::torch::KLDivLoss, ...). Not in xloss.hpp: link CMake's
/// xloss::torch (xloss and libtorch).

#include "torch/functional.hpp"
#include "torch/modules.hpp"

#endif
