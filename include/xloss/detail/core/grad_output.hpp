/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_GRAD_OUTPUT_HPP
#define XLOSS_DETAIL_CORE_GRAD_OUTPUT_HPP

// The grad_output argument of every backward: one value for the whole loss (an arithmetic scalar
// or a 0-d expression), or an expression broadcastable to the loss's shape.

#include <stdexcept>
#include <string>
#include <type_traits>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)

#include "error.hpp"
#include "expression.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * Checks grad_output against the loss's shape, then calls `uniform(double)` for one value
             * (a scalar, or a 0-d expression) or `spread(g)` for an expression that broadcasts to
             * `loss_shape`; throws std::invalid_argument naming `func` and both shapes otherwise.
             */
            template <class G, class Uniform, class Spread>
            inline decltype(auto) visit_grad_output(const G& grad_output, const shape_type& loss_shape,
                                                    const char* func, Uniform&& uniform, Spread&& spread)
            {
                if constexpr (xt::is_xexpression<G>::value)
                {
                    static_assert(is_scalar_value<typename G::value_type>::value,
                                  "xloss: grad_output must hold arithmetic, bfloat16 or half values");
                    const shape_type got = to_shape(grad_output.shape());
                    if (got.empty())
                    {
                        return uniform(static_cast<double>(grad_output()));
                    }
                    if (loss_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": grad_output of shape "
                                                            + shape_to_string(got)
                                                            + " does not match the reduced loss's shape (); pass a 0-d "
                                                              "expression or a scalar"));
                    }
                    if (!broadcasts_to(got, loss_shape))
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": grad_output of shape " + shape_to_string(got)
                            + " does not broadcast to the loss's shape " + shape_to_string(loss_shape)));
                    }
                    return spread(grad_output);
                }
                else
                {
                    static_assert(is_scalar_value<G>::value,
                                  "xloss: grad_output must be an xtensor expression or an arithmetic scalar");
                    return uniform(static_cast<double>(grad_output));
                }
            }
        }
    }
}

#endif
