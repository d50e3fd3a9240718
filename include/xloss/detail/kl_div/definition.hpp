/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_DEFINITION_HPP
#define XLOSS_DETAIL_KL_DIV_DEFINITION_HPP

// The KL loss as the pointwise engine takes it: its own option checks, the values
// target_policy::checked rejects, and the op set its options select (ops.hpp).

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "../../kl_div_options.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../engine/pointwise_call.hpp"
#include "ops.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * Throws std::domain_error at the first element of e, in row-major order, for which bad(v) holds,
             * naming the argument, the flat index and the value: target_policy::checked.
             */
            template <class E, class Bad>
            inline void check_each_value(const E& e, const char* func, const char* name, const char* what, Bad bad)
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

            /// The KL loss's definition (pointwise_definition).
            struct kl_div_definition : pointwise_definition_base
            {
                static constexpr const char* name = "kl_div";

                /// Its own options (the engine checks the reduction, the divisor and the weight).
                static void check(const kl_div_options& options, const char* func)
                {
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
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": epsilon " + number_to_string(options.epsilon())
                            + " applies to probability targets, but log_target is set"));
                    }
                }

                /// target_policy::checked: a NaN input, a negative or NaN probability, a NaN log-probability.
                template <class E1, class E2>
                static void check_values(const E1& x, const E2& t, const kl_div_options& options, const char* func)
                {
                    if (options.target_policy() != target_policy::checked)
                    {
                        return;
                    }
                    check_each_value(x, func, "input", "NaN",
                                     [](auto v)
                                     {
                                         return is_nan(v);
                                     });
                    if (options.log_target())
                    {
                        check_each_value(t, func, "target", "NaN",
                                         [](auto v)
                                         {
                                             return is_nan(v);
                                         });
                        return;
                    }
                    check_each_value(t, func, "target", "a negative or NaN probability",
                                     [](auto v)
                                     {
                                         return v < 0 || is_nan(v);
                                     });
                }

                /**
                 * Calls f with the op_set the options select: PyTorch's probability ops (the fast path), the
                 * log-target ops, or the general probability ops for an epsilon or the `zero` policy.
                 */
                template <class F>
                static decltype(auto) with_ops(const kl_div_options& options, F&& f)
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
            };

            template <>
            struct pointwise_definition<kl_div_options>
            {
                using type = kl_div_definition;
            };
        }
    }
}

#endif
