/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_XLOSS_HPP
#define XLOSS_XLOSS_HPP

/// @file
/// Umbrella header: everything xloss offers.

#include "cross_entropy.hpp"
#include "cross_entropy_options.hpp"
#include "distill_options.hpp"
#include "divergence_loss.hpp"
#include "divergence_result.hpp"
#include "float16.hpp"
#include "forward_kl.hpp"
#include "generalized_jsd.hpp"
#include "kl_div.hpp"
#include "kl_div_forward_backward.hpp"
#include "kl_div_kernel.hpp"
#include "kl_div_loss.hpp"
#include "kl_div_options.hpp"
#include "kl_div_out.hpp"
#include "kl_div_result.hpp"
#include "kl_div_with_logits.hpp"
#include "loss_options.hpp"
#include "pointwise_loss.hpp"
#include "pointwise_options.hpp"
#include "pointwise_result.hpp"
#include "reduction.hpp"
#include "reverse_kl.hpp"
#include "symmetric_kl.hpp"
#include "top_k.hpp"
#include "xloss_config.hpp"

#endif
