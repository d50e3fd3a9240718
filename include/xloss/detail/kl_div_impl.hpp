/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_IMPL_HPP
#define XLOSS_DETAIL_KL_DIV_IMPL_HPP

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

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xbuilder.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)

#include "../kl_div_options.hpp"
#include "../reduction.hpp"
#include "axis_sum.hpp"
#include "error.hpp"
#include "expression.hpp"
#include "kernels.hpp"
#include "kl_div_ops.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Shapes and divisor of one call.
            struct loss_setup
            {
                shape_type input_shape;
                shape_type target_shape;
                shape_type shape; ///< the broadcast shape: the shape of the `none` loss
                std::size_t size;
                double divisor; ///< what the reduction divides the sum by (1 for none and sum)
                int threads;
            };

            /// A reduction that is not an enumerator (a cast integer) is an error, not a silent sum.
            inline void check_reduction(reduction r, const char* func)
            {
                if (!is_valid(r))
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": reduction "
                                                        + std::to_string(static_cast<int>(r))
                                                        + " is not one of none, mean, sum, batchmean"));
                }
            }

            inline int resolve_threads(int requested, const char* func)
            {
                if (requested < 0)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                        + ": num_threads must be 0 (OpenMP's "
                                                          "default) or positive, got "
                                                        + std::to_string(requested)));
                }
#ifdef _OPENMP
                return requested == 0 ? omp_get_max_threads() : requested;
#else
                if (requested > 1)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": num_threads("
                                                        + std::to_string(requested)
                                                        + ") needs OpenMP, and this translation unit is compiled "
                                                          "without it (compile with -fopenmp, or link "
                                                          "OpenMP::OpenMP_CXX; xloss::has_openmp() tells)"));
                }
                return 1;
#endif
            }

            inline std::string number_to_string(double v)
            {
                std::ostringstream os;
                os.precision(9);
                os << v;
                return os.str();
            }

            inline std::invalid_argument option_error(const char* func, const char* option, const std::string& must,
                                                      double got)
            {
                return std::invalid_argument(std::string("xloss::") + func + ": " + option + " must be " + must
                                             + ", got " + number_to_string(got));
            }

            /// Checks the options: enumerations, and the options that hold numbers.
            inline void check_options(const kl_div_options& options, const char* func)
            {
                check_reduction(options.reduction(), func);
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
                if (!is_nonnegative_finite(options.divisor()))
                {
                    detail::raise(option_error(func, "divisor", "positive (or 0: from the shapes)", options.divisor()));
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
                switch (options.reduction())
                {
                    case reduction::mean:
                        s.divisor = static_cast<double>(s.size);
                        break;
                    case reduction::batchmean:
                        s.divisor = s.input_shape.empty() ? 1. : static_cast<double>(s.input_shape[0]);
                        break;
                    default:
                        s.divisor = 1.;
                }
                const bool averages =
                    options.reduction() == reduction::mean || options.reduction() == reduction::batchmean;
                if (averages && options.divisor() > 0.)
                {
                    s.divisor = options.divisor();
                }
                s.threads = resolve_threads(options.num_threads(), func);
                check_policy(x, t, options, func);
                return s;
            }

            inline std::invalid_argument shape_error(const char* func, const char* what, const shape_type& got,
                                                     const char* expected_what, const shape_type& expected)
            {
                return std::invalid_argument(std::string("xloss::") + func + ": " + what + " of shape "
                                             + shape_to_string(got) + " does not match " + expected_what + " "
                                             + shape_to_string(expected));
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

            /**
             * One pass over input and target: returns the reduced loss (sum / divisor), or writes the
             * `none` loss into `loss_out`; writes the input gradient into `grad_input` and the target
             * gradient into `grad_target` where they are not null, over the broadcast shape. The
             * gradients are those of the loss times `grad_scale` (grad_output / divisor).
             */
            template <class V, class Ops, class E1, class E2, bool gradients = true>
            inline double fused_pass(const Ops& ops, const E1& x, const E2& t, const loss_setup& s, bool reduce,
                                     V* loss_out, V grad_scale, V* grad_input, V* grad_target)
            {
                using batch = default_batch<V>;
                const auto& term = ops.term;
                const scalar_source<V> g{grad_scale};
                const double total = walk<block_sum<batch>, V>(
                    x, t, g, s.shape, s.threads,
                    [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset, auto& acc)
                    {
                        if (reduce && !grad_input && !grad_target)
                        {
                            acc.add(term, px, pt, pg, m);
                            return;
                        }
                        if constexpr (gradients)
                        {
                            if (reduce)
                            {
                                // One loop: each batch of x and t is loaded once for the term and the
                                // gradients, with the gradients to write known at compile time.
                                auto fused = [&](auto input, auto target)
                                {
                                    acc.add(term, px, pt, pg, m,
                                            [&](const batch& xb, const batch& tb, const batch& gb, std::size_t i,
                                                std::size_t count)
                                            {
                                                if constexpr (decltype(input)::value)
                                                {
                                                    store_lanes(grad_input + offset + i, ops.input_grad(xb, tb, gb),
                                                                count);
                                                }
                                                if constexpr (decltype(target)::value)
                                                {
                                                    store_lanes(grad_target + offset + i, ops.target_grad(xb, tb, gb),
                                                                count);
                                                }
                                            });
                                };
                                using yes = std::true_type;
                                using no = std::false_type;
                                grad_input ? (grad_target ? fused(yes{}, yes{}) : fused(yes{}, no{}))
                                           : fused(no{}, yes{});
                                return;
                            }
                        }
                        if (loss_out)
                        {
                            map<batch>(term, px, pt, pg, loss_out + offset, m);
                        }
                        if constexpr (gradients)
                        {
                            if (grad_input)
                            {
                                map<batch>(ops.input_grad, px, pt, pg, grad_input + offset, m);
                            }
                            if (grad_target)
                            {
                                map<batch>(ops.target_grad, px, pt, pg, grad_target + offset, m);
                            }
                        }
                    });
                return total / s.divisor;
            }

            /// fused_pass() for the loss alone: the gradient loops are not instantiated.
            template <class V, class Ops, class E1, class E2>
            inline double loss_pass(const Ops& ops, const E1& x, const E2& t, const loss_setup& s, bool reduce,
                                    V* loss_out)
            {
                return fused_pass<V, Ops, E1, E2, false>(ops, x, t, s, reduce, loss_out, V(0), nullptr, nullptr);
            }

            /// One gradient (`Op`) over the broadcast shape into `out`, for grad_output `g`: a
            /// scalar_source already divided by the divisor, or an expression broadcastable to the shape.
            template <class V, class Op, class E1, class E2, class G>
            inline void gradient_pass(Op op, const G& g, const E1& x, const E2& t, const loss_setup& s, V* out)
            {
                using batch = default_batch<V>;
                walk<block_sum<batch>, V>(x, t, g, s.shape, s.threads,
                                          [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset, auto&)
                                          {
                                              map<batch>(op, px, pt, pg, out + offset, m);
                                          });
            }

            /// Checks grad_output and calls f with what the gradient pass takes for it.
            template <class V, class G, class F>
            inline void with_grad_output(const G& grad_output, reduction r, const loss_setup& s, const char* func,
                                         F&& f)
            {
                if constexpr (xt::is_xexpression<G>::value)
                {
                    static_assert(std::is_arithmetic<typename G::value_type>::value,
                                  "xloss: grad_output must hold arithmetic values");
                    const shape_type grad_shape = to_shape(grad_output.shape());
                    if (r == reduction::none)
                    {
                        if (!broadcasts_to(grad_shape, s.shape))
                        {
                            detail::raise(std::invalid_argument(
                                std::string("xloss::") + func + ": grad_output of shape " + shape_to_string(grad_shape)
                                + " does not broadcast to the loss's shape " + shape_to_string(s.shape)));
                        }
                        f(grad_output);
                        return;
                    }
                    if (!grad_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": grad_output of shape "
                                                            + shape_to_string(grad_shape)
                                                            + " does not match the reduced loss's shape (); pass a 0-d "
                                                              "expression or a scalar"));
                    }
                    f(scalar_source<V>{static_cast<V>(static_cast<double>(grad_output()) / s.divisor)});
                }
                else
                {
                    static_assert(std::is_arithmetic<G>::value,
                                  "xloss: grad_output must be an xtensor expression or an arithmetic scalar");
                    f(scalar_source<V>{static_cast<V>(static_cast<double>(grad_output) / s.divisor)});
                }
            }

            /// The gradient w.r.t. one argument (`wrt_target` says which) over the broadcast shape, into `out`.
            template <class V, bool wrt_target, class G, class E1, class E2>
            inline void gradient_into(V* out, const G& grad_output, const E1& x, const E2& t, const loss_setup& s,
                                      const kl_div_options& options, const char* func)
            {
                with_grad_output<V>(grad_output, options.reduction(), s, func,
                                    [&](const auto& g)
                                    {
                                        with_ops(options,
                                                 [&](const auto& ops)
                                                 {
                                                     if constexpr (wrt_target)
                                                     {
                                                         gradient_pass<V>(ops.target_grad, g, x, t, s, out);
                                                     }
                                                     else
                                                     {
                                                         gradient_pass<V>(ops.input_grad, g, x, t, s, out);
                                                     }
                                                 });
                                    });
            }

            /// The gradient w.r.t. one argument (`wrt_target` says which), in that argument's shape.
            template <class V, bool wrt_target, class G, class E1, class E2>
            inline xt::xarray<V> gradient(const G& grad_output, const E1& x, const E2& t, const kl_div_options& options,
                                          const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                xt::xarray<V> full = xt::xarray<V>::from_shape(s.shape);
                gradient_into<V, wrt_target>(full.data(), grad_output, x, t, s, options, func);
                return sum_to_shape(std::move(full), wrt_target ? s.target_shape : s.input_shape);
            }
        }
    }
}

#endif
