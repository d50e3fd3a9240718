/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_OUT_HPP
#define XLOSS_KL_DIV_OUT_HPP

/// @file
/// The KL-divergence loss, its gradients and the fused pass, written into
/// containers the caller provides: no allocation in a training loop.

#include <algorithm>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/core/error.hpp"
#include "detail/core/output.hpp"
#include "detail/kl_div/call.hpp"
#include "kl_div.hpp"
#include "kl_div_options.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief kl_div() written into `out`, allocating nothing.
         *
         * @param out for `reduction::none`, a container of the loss's (broadcast) shape; for a reduced
         *        loss, a 0-d container or a float or double variable
         * @return out
         * @throw std::invalid_argument, leaving `out` untouched, if the shapes do not broadcast or
         *        `out` does not have the loss's shape
         *
         * Allocation-free when `out` is contiguous row-major of the loss's value type (any container,
         * or a scalar); otherwise the loss is computed into a temporary and assigned.
         */
        template <class O, class E1, class E2>
        O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                      const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_backward() written into `grad_input`, which must have the input's shape.
         * @return grad_input
         * @throw std::invalid_argument, leaving `grad_input` untouched, for shapes that do not fit
         *
         * Allocation-free when input and target have the same shape and `grad_input` is contiguous
         * row-major of the loss's value type.
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                               const xt::xexpression<E2>& target, const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_target_backward() written into `grad_target`, which must have the target's shape.
         * @return grad_target
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options = {});

        namespace detail
        {
            template <class V, bool wrt_target, class O, class G, class E1, class E2>
            inline O& gradient_out(O& out, const G& grad_output, const E1& x, const E2& t,
                                   const kl_div_options& options, const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                const shape_type& arg_shape = wrt_target ? s.target_shape : s.input_shape;
                const bool same_shape = check_out_shape(out, arg_shape, func, wrt_target ? "grad_target" : "grad_input",
                                                        wrt_target ? "the target's shape" : "the input's shape");
                if (needs_general(options))
                {
                    assign_out(out, general_gradient<V, wrt_target>(grad_output, x, t, no_weight<V>, options, func));
                    return out;
                }
                V* data = same_shape && arg_shape == s.shape ? writable_data<V>(out) : nullptr;
                if (!data)
                {
                    assign_out(out, gradient<V, wrt_target>(grad_output, x, t, options, func));
                    return out;
                }
                gradient_into<V, wrt_target>(data, grad_output, x, t, s, options, func);
                return out;
            }
        }

        template <class O, class E1, class E2>
        inline O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            constexpr const char* func = "kl_div_out";
            const auto& x = input.derived_cast();
            const auto& t = target.derived_cast();
            const detail::loss_setup s = detail::make_setup(x, t, options, func);
            const detail::shape_type loss_shape = detail::make_plan(s, options, func).out_shape;
            const bool reduce = loss_shape.empty() && options.reduction() != reduction::none;
            if (detail::needs_general(options))
            {
                // Computed aside, then assigned: out stays untouched if anything throws.
                if constexpr (std::is_arithmetic<O>::value)
                {
                    if (!loss_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": the loss has shape "
                                                            + detail::shape_to_string(loss_shape)
                                                            + "; a scalar out needs a 0-d loss"));
                    }
                    out = static_cast<O>(detail::general_forward<V>(x, t, detail::no_weight<V>, options, func)());
                }
                else
                {
                    detail::check_out_shape(out, loss_shape, func, "out", "the loss's shape");
                    detail::assign_out(out, detail::general_forward<V>(x, t, detail::no_weight<V>, options, func));
                }
                return out;
            }
            auto pass = [&](V* loss)
            {
                return detail::with_ops(options,
                                        [&](const auto& ops)
                                        {
                                            return detail::loss_pass<V>(ops, x, t, s, reduce, loss);
                                        });
            };
            if constexpr (std::is_arithmetic<O>::value)
            {
                static_assert(std::is_floating_point<O>::value,
                              "xloss::kl_div_out: a scalar out must be float or double");
                if (!reduce)
                {
                    detail::raise(
                        std::invalid_argument("xloss::kl_div_out: reduction 'none' needs an out container of shape "
                                              + detail::shape_to_string(s.shape) + ", not a scalar"));
                }
                out = static_cast<O>(pass(nullptr));
            }
            else
            {
                const bool same_shape = detail::check_out_shape(out, reduce ? detail::shape_type{} : s.shape, func,
                                                                "out", "the loss's shape");
                if (!same_shape)
                {
                    detail::assign_out(out, kl_div(input, target, options));
                }
                else if (reduce)
                {
                    out() = static_cast<typename O::value_type>(pass(nullptr));
                }
                else if (V* data = detail::writable_data<V>(out))
                {
                    pass(data);
                }
                else
                {
                    detail::assign_out(out, kl_div(input, target, options));
                }
            }
            return out;
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::gradient_out<V, false>(grad_input, grad_output, input.derived_cast(), target.derived_cast(),
                                                  options, "kl_div_backward_out");
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                             const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::gradient_out<V, true>(grad_target, grad_output, input.derived_cast(), target.derived_cast(),
                                                 options, "kl_div_target_backward_out");
        }
    }
}

#endif
