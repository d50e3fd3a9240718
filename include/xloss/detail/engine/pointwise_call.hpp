/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_POINTWISE_CALL_HPP
#define XLOSS_DETAIL_ENGINE_POINTWISE_CALL_HPP

// What a pointwise loss's calls share: the definition a loss gives (pointwise_definition), the
// checks on shapes and options, the reduction's divisor, and the gradient passes into flat arrays
// of the broadcast shape.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xbuilder.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)

#include "../core/vocabulary.hpp"
#include "../core/allocate.hpp"
#include "../core/axis_sum.hpp"
#include "../core/divisor.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/grad_output.hpp"
#include "../core/options_check.hpp"
#include "pointwise.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The argument a pointwise gradient is taken with respect to.
            enum class pointwise_wrt
            {
                input,
                target
            };

            /**
             * What a pointwise loss gives the engine, found from its options class: Options::definition,
             * or a specialisation (kl_div_options, whose type is the same for every instruction set,
             * names its definition here). A definition derives from pointwise_definition_base and has:
             *  - `static constexpr const char* name`: its calls' name in errors ("kl_div"; the others
             *    add "_backward", "_target_backward", "_forward_backward", "_out"),
             *  - `template <class F> static decltype(auto) with_ops(const Options&, F&& f)`: calls f
             *    with the op_set the options select,
             *  - optionally `check(options, func)` (its own options) and `check_values(x, t, options,
             *    func)` (values it rejects), which the base's do nothing for.
             */
            template <class Options>
            struct pointwise_definition
            {
                using type = typename Options::definition;
            };

            template <class Options>
            using pointwise_definition_t = typename pointwise_definition<Options>::type;

            /// The defaults of a pointwise definition: no options or values of its own to check.
            struct pointwise_definition_base
            {
                template <class Options>
                static void check(const Options&, const char*) noexcept
                {
                }

                template <class E1, class E2, class Options>
                static void check_values(const E1&, const E2&, const Options&, const char*) noexcept
                {
                }
            };

            /// The options every pointwise loss checks: the reduction, the divisor, the weight.
            template <class Options>
            inline void check_pointwise_options(const Options& options, const char* func)
            {
                check_loss_options(options, func, "from the shapes");
                if (!is_finite(options.weight()))
                {
                    detail::raise(option_error(func, "weight", "finite", options.weight()));
                }
                pointwise_definition_t<Options>::check(options, func);
            }

            /// The op set's gradient w.r.t. argument A.
            template <pointwise_wrt A, class Ops>
            inline const auto& grad_op(const Ops& ops) noexcept
            {
                if constexpr (A == pointwise_wrt::target)
                {
                    return ops.target_grad;
                }
                else
                {
                    return ops.input_grad;
                }
            }

            /// The shape of argument A, which its gradient takes.
            template <pointwise_wrt A>
            inline const shape_type& arg_shape(const loss_setup& s) noexcept
            {
                return A == pointwise_wrt::target ? s.target_shape : s.input_shape;
            }

            /// Checks the options, the shapes and the values the loss rejects, and works out the
            /// shapes and the divisor.
            template <class E1, class E2, class Options>
            inline loss_setup make_setup(const E1& x, const E2& t, const Options& options, const char* func)
            {
                check_pointwise_options(options, func);
                loss_setup s;
                s.input_shape = to_shape(x.shape());
                s.target_shape = to_shape(t.shape());
                s.shape = broadcast_shapes(s.input_shape, s.target_shape, func, "input", "target");
                s.size = size_of(s.shape);
                s.divisor = reduction_divisor(options.reduction(), options.divisor(), static_cast<double>(s.size),
                                              s.input_shape.empty() ? 1. : static_cast<double>(s.input_shape[0]));
                s.threads = resolve_threads(options.num_threads(), func);
                pointwise_definition_t<Options>::check_values(x, t, options, func);
                return s;
            }

            /// Sums a broadcast-shaped gradient over the axes its argument was broadcast along.
            template <class V>
            inline xt::xarray<V> sum_to_shape(xt::xarray<V>&& full, const shape_type& shape)
            {
                if (full.dimension() == shape.size() && std::equal(shape.begin(), shape.end(), full.shape().begin()))
                {
                    return std::move(full);
                }
                const std::size_t lead = full.dimension() - shape.size();
                std::vector<std::size_t> axes;
                for (std::size_t i = 0; i < full.dimension(); ++i)
                {
                    if (i < lead || (shape[i - lead] == 1 && full.shape()[i] != 1))
                    {
                        axes.push_back(i);
                    }
                }
                xt::xarray<V> r = sum_axes<V>(full, axes, false);
                r.reshape(shape);
                return r;
            }

            /// Checks grad_output and calls f with what the gradient pass takes for it: a scalar_source
            /// already divided by the divisor, or the expression.
            template <class V, class G, class F>
            inline void with_grad_output(const G& grad_output, reduction r, const loss_setup& s, const char* func,
                                         F&& f)
            {
                visit_grad_output(
                    grad_output, r == reduction::none ? s.shape : shape_type{}, func,
                    [&](double g)
                    {
                        f(scalar_source<V>{static_cast<V>(g / s.divisor)});
                    },
                    [&](const auto& g)
                    {
                        f(g);
                    });
            }

            /// The gradient w.r.t. one argument (A) over the broadcast shape, into `out`.
            template <class V, pointwise_wrt A, class G, class E1, class E2, class Options>
            inline void gradient_into(V* out, const G& grad_output, const E1& x, const E2& t, const loss_setup& s,
                                      const Options& options, const char* func)
            {
                with_grad_output<V>(grad_output, options.reduction(), s, func,
                                    [&](const auto& g)
                                    {
                                        pointwise_definition_t<Options>::with_ops(options,
                                                                                  [&](const auto& ops)
                                                                                  {
                                                                                      gradient_pass<V>(grad_op<A>(ops),
                                                                                                       g, x, t, s, out);
                                                                                  });
                                    });
            }

            /// The gradient w.r.t. one argument (A), in that argument's shape.
            template <class V, pointwise_wrt A, class G, class E1, class E2, class Options>
            inline xt::xarray<V> gradient(const G& grad_output, const E1& x, const E2& t, const Options& options,
                                          const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                xt::xarray<V> full = new_array<V>(s.shape);
                gradient_into<V, A>(full.data(), grad_output, x, t, s, options, func);
                return sum_to_shape(std::move(full), arg_shape<A>(s));
            }
        }
    }
}

#endif
