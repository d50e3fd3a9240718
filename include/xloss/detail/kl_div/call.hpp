/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_CALL_HPP
#define XLOSS_DETAIL_KL_DIV_CALL_HPP

// What the kl_div functions share: the checks on shapes and options, the
// reduction's divisor, and the passes that write the loss and the gradients
// into flat arrays of the broadcast shape.

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

#include "../../kl_div_options.hpp"
#include "../../reduction.hpp"
#include "../core/allocate.hpp"
#include "../core/axis_sum.hpp"
#include "../core/divisor.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/grad_output.hpp"
#include "../core/options_check.hpp"
#include "../engine/pointwise.hpp"
#include "ops.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The argument a KL gradient is taken with respect to.
            enum class kl_wrt
            {
                input,
                target
            };

            /// The op set's gradient w.r.t. argument A.
            template <kl_wrt A, class Ops>
            inline const auto& grad_op(const Ops& ops) noexcept
            {
                if constexpr (A == kl_wrt::target)
                {
                    return ops.target_grad;
                }
                else
                {
                    return ops.input_grad;
                }
            }

            /// The shape of argument A, which its gradient takes.
            template <kl_wrt A>
            inline const shape_type& arg_shape(const loss_setup& s) noexcept
            {
                return A == kl_wrt::target ? s.target_shape : s.input_shape;
            }

            /// Checks the options: enumerations, and the options that hold numbers.
            inline void check_options(const kl_div_options& options, const char* func)
            {
                check_loss_options(options, func, "from the shapes");
                const auto policy = options.target_policy();
                if (policy != target_policy::pytorch && policy != target_policy::zero
                    && policy != target_policy::checked)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": target_policy "
                                                        + std::to_string(static_cast<int>(policy))
                                                        + " is not one of pytorch, zero, checked"));
                }
                if (!is_nonnegative_finite(options.epsilon()))
                {
                    detail::raise(option_error(func, "epsilon", "finite and not negative", options.epsilon()));
                }
                if (options.epsilon() > 0. && options.log_target())
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": epsilon "
                                                        + number_to_string(options.epsilon())
                                                        + " applies to probability targets, but log_target is set"));
                }
                if (!is_finite(options.weight()))
                {
                    detail::raise(option_error(func, "weight", "finite", options.weight()));
                }
            }

            /**
             * Throws std::domain_error at the first element of e, in row-major order, for which bad(v) holds,
             * naming the argument, the flat index and the value: target_policy::checked.
             */
            template <class E, class Bad>
            inline void check_values(const E& e, const char* func, const char* name, const char* what, Bad bad)
            {
                using T = typename E::value_type;
                auto fail = [&](std::size_t index, T v)
                {
                    detail::raise(std::domain_error(std::string("xloss::") + func + ": " + name + " holds " + what
                                                    + " at flat index " + std::to_string(index) + ": "
                                                    + number_to_string(v) + " (target_policy::checked)"));
                };
                if (const T* p = contiguous_data<T>(e))
                {
                    // Blocks without an early exit vectorise; the rare failing block is searched again.
                    const std::size_t n = e.size();
                    for (std::size_t begin = 0; begin < n; begin += chunk_size)
                    {
                        const std::size_t end = std::min(n, begin + chunk_size);
                        bool any = false;
                        for (std::size_t i = begin; i < end; ++i)
                        {
                            any |= bad(p[i]);
                        }
                        for (std::size_t i = begin; any && i < end; ++i)
                        {
                            if (bad(p[i]))
                            {
                                fail(i, p[i]);
                            }
                        }
                    }
                    return;
                }
                std::size_t i = 0;
                for (auto it = e.cbegin(); it != e.cend(); ++it, ++i)
                {
                    if (bad(*it))
                    {
                        fail(i, *it);
                    }
                }
            }

            /// target_policy::checked: a NaN input, a negative or NaN probability, a NaN log-probability.
            template <class E1, class E2>
            inline void check_policy(const E1& x, const E2& t, const kl_div_options& options, const char* func)
            {
                if (options.target_policy() != target_policy::checked)
                {
                    return;
                }
                check_values(x, func, "input", "NaN",
                             [](auto v)
                             {
                                 return is_nan(v);
                             });
                if (options.log_target())
                {
                    check_values(t, func, "target", "NaN",
                                 [](auto v)
                                 {
                                     return is_nan(v);
                                 });
                    return;
                }
                check_values(t, func, "target", "a negative or NaN probability",
                             [](auto v)
                             {
                                 return v < 0 || is_nan(v);
                             });
            }

            /// Checks the options, the shapes and (target_policy::checked) the values, and works out the
            /// shapes and the divisor.
            template <class E1, class E2>
            inline loss_setup make_setup(const E1& x, const E2& t, const kl_div_options& options, const char* func)
            {
                check_options(options, func);
                loss_setup s;
                s.input_shape = to_shape(x.shape());
                s.target_shape = to_shape(t.shape());
                s.shape = broadcast_shapes(s.input_shape, s.target_shape, func, "input", "target");
                s.size = size_of(s.shape);
                s.divisor = reduction_divisor(options.reduction(), options.divisor(), static_cast<double>(s.size),
                                              s.input_shape.empty() ? 1. : static_cast<double>(s.input_shape[0]));
                s.threads = resolve_threads(options.num_threads(), func);
                check_policy(x, t, options, func);
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

            /**
             * Calls f with the op_set the options select: PyTorch's probability ops (the fast path), the
             * log-target ops, or the general probability ops for an epsilon or the `zero` policy.
             */
            template <class F>
            inline decltype(auto) with_ops(const kl_div_options& options, F&& f)
            {
                if (options.log_target())
                {
                    return f(op_set<kl_term_log, kl_input_grad_log, kl_target_grad_log>{});
                }
                if (options.epsilon() == 0. && options.target_policy() != target_policy::zero)
                {
                    return f(op_set<kl_term, kl_input_grad, kl_target_grad>{});
                }
                const general_prob p{options.epsilon(), options.target_policy() == target_policy::zero};
                return f(op_set<kl_term_general, kl_input_grad_general, kl_target_grad_general>{{p}, {p}, {p}});
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
            template <class V, kl_wrt A, class G, class E1, class E2>
            inline void gradient_into(V* out, const G& grad_output, const E1& x, const E2& t, const loss_setup& s,
                                      const kl_div_options& options, const char* func)
            {
                with_grad_output<V>(grad_output, options.reduction(), s, func,
                                    [&](const auto& g)
                                    {
                                        with_ops(options,
                                                 [&](const auto& ops)
                                                 {
                                                     gradient_pass<V>(grad_op<A>(ops), g, x, t, s, out);
                                                 });
                                    });
            }

            /// The gradient w.r.t. one argument (A), in that argument's shape.
            template <class V, kl_wrt A, class G, class E1, class E2>
            inline xt::xarray<V> gradient(const G& grad_output, const E1& x, const E2& t, const kl_div_options& options,
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
