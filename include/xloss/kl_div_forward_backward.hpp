/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_FORWARD_BACKWARD_HPP
#define XLOSS_KL_DIV_FORWARD_BACKWARD_HPP

/// @file
/// The loss and its gradients in one pass over the inputs.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/core/error.hpp"
#include "detail/kl_div/call.hpp"
#include "kl_div_options.hpp"
#include "kl_div_out.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief The loss and the gradients of a loss that ends the computation (grad_output = 1).
         */
        template <class V>
        struct kl_div_forward_backward_result
        {
            xt::xarray<V> loss;        ///< as kl_div() returns it
            xt::xarray<V> grad_input;  ///< as kl_div_backward(1, ...) returns it
            xt::xarray<V> grad_target; ///< as kl_div_target_backward(1, ...) returns it; shape (0) unless asked for
        };

        /**
         * @ingroup kl_div
         * @brief The loss and its input gradient (and, if `with_target_grad`, its target gradient)
         *        in one pass that reads input and target once.
         *
         * Each result equals what kl_div(), kl_div_backward() and kl_div_target_backward() return
         * for a grad_output of 1.
         * @code
         * auto r = xloss::kl_div_forward_backward(x, t, xloss::kl_div_options(xloss::reduction::batchmean));
         * float loss = r.loss();
         * @endcode
         */
        template <class E1, class E2>
        auto kl_div_forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                     const kl_div_options& options = {}, bool with_target_grad = false);

        /**
         * @ingroup kl_div
         * @brief kl_div_forward_backward() into caller-provided outputs: `loss` as for kl_div_out(),
         *        `grad_input` of the input's shape. Allocation-free when input and target have the
         *        same shape and the gradient is contiguous row-major of the loss's value type.
         * @throw std::invalid_argument, leaving every output untouched, for shapes that do not fit
         */
        template <class L, class O, class E1, class E2>
        void kl_div_forward_backward_out(L& loss, O& grad_input, const xt::xexpression<E1>& input,
                                         const xt::xexpression<E2>& target, const kl_div_options& options = {});

        /// @brief The same with the target gradient too, into `grad_target` of the target's shape.
        template <class L, class O, class P, class E1, class E2>
        void kl_div_forward_backward_out(L& loss, O& grad_input, P& grad_target, const xt::xexpression<E1>& input,
                                         const xt::xexpression<E2>& target, const kl_div_options& options = {});

        namespace detail
        {
            template <class V, class E1, class E2>
            inline kl_div_forward_backward_result<V> forward_backward(const E1& x, const E2& t,
                                                                      const kl_div_options& options,
                                                                      bool with_target_grad, const char* func)
            {
                kl_div_forward_backward_result<V> r;
                if (needs_general(options))
                {
                    r.loss = general_forward<V>(x, t, no_weight<V>, options, func);
                    r.grad_input = general_gradient<V, false>(1.0, x, t, no_weight<V>, options, func);
                    r.grad_target = with_target_grad ? general_gradient<V, true>(1.0, x, t, no_weight<V>, options, func)
                                                     : xt::xarray<V>::from_shape({0});
                    return r;
                }
                const loss_setup s = make_setup(x, t, options, func);
                const bool reduce = options.reduction() != reduction::none;
                r.loss = xt::xarray<V>::from_shape(reduce ? shape_type{} : s.shape);
                xt::xarray<V> gx = xt::xarray<V>::from_shape(s.shape);
                xt::xarray<V> gt = xt::xarray<V>::from_shape(with_target_grad ? s.shape : shape_type{0});
                const double value = with_ops(options,
                                              [&](const auto& ops)
                                              {
                                                  return fused_pass<V>(ops, x, t, s, reduce, r.loss.data(),
                                                                       static_cast<V>(1. / s.divisor), gx.data(),
                                                                       with_target_grad ? gt.data() : nullptr);
                                              });
                if (reduce)
                {
                    r.loss() = static_cast<V>(value);
                }
                r.grad_input = sum_to_shape(std::move(gx), s.input_shape);
                r.grad_target = with_target_grad ? sum_to_shape(std::move(gt), s.target_shape) : std::move(gt);
                return r;
            }

            /// The fused pass straight into the caller's outputs, or through forward_backward().
            template <class V, class L, class O, class P, class E1, class E2>
            inline void forward_backward_out(L& loss, O& grad_input, P* grad_target, const E1& x, const E2& t,
                                             const kl_div_options& options)
            {
                constexpr const char* func = "kl_div_forward_backward_out";
                const loss_setup s = make_setup(x, t, options, func);
                const shape_type loss_shape = make_plan(s, options, func).out_shape;
                const bool reduce = options.reduction() != reduction::none;
                if constexpr (std::is_arithmetic<L>::value)
                {
                    if (!loss_shape.empty() || !reduce)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": a loss of shape "
                                                            + shape_to_string(reduce ? loss_shape : s.shape)
                                                            + " needs a loss container, not a scalar"));
                    }
                }
                // Outputs that xtensor would resize (check_out_shape returns false) go through the aside path.
                bool outs_fit = true;
                if constexpr (!std::is_arithmetic<L>::value)
                {
                    outs_fit = check_out_shape(loss, loss_shape, func, "loss", "the loss's shape");
                }
                outs_fit =
                    check_out_shape(grad_input, s.input_shape, func, "grad_input", "the input's shape") && outs_fit;
                if (grad_target)
                {
                    outs_fit = check_out_shape(*grad_target, s.target_shape, func, "grad_target", "the target's shape")
                               && outs_fit;
                }
                const bool same_shapes = outs_fit && s.input_shape == s.shape && s.target_shape == s.shape;
                V* gx = same_shapes ? writable_data<V>(grad_input) : nullptr;
                V* gt = same_shapes && grad_target ? writable_data<V>(*grad_target) : nullptr;
                V* lo = nullptr;
                if constexpr (!std::is_arithmetic<L>::value)
                {
                    lo = reduce ? nullptr : writable_data<V>(loss);
                }
                if (!gx || (grad_target && !gt) || (!reduce && !lo) || needs_general(options))
                {
                    auto r = forward_backward<V>(x, t, options, grad_target != nullptr, func);
                    if constexpr (std::is_arithmetic<L>::value)
                    {
                        loss = static_cast<L>(r.loss());
                    }
                    else
                    {
                        assign_out(loss, r.loss);
                    }
                    assign_out(grad_input, r.grad_input);
                    if (grad_target)
                    {
                        assign_out(*grad_target, r.grad_target);
                    }
                    return;
                }
                const double value =
                    with_ops(options,
                             [&](const auto& ops)
                             {
                                 return fused_pass<V>(ops, x, t, s, reduce, lo, static_cast<V>(1. / s.divisor), gx, gt);
                             });
                if (reduce)
                {
                    if constexpr (std::is_arithmetic<L>::value)
                    {
                        loss = static_cast<L>(value);
                    }
                    else
                    {
                        loss() = static_cast<typename L::value_type>(value);
                    }
                }
            }
        }

        template <class E1, class E2>
        inline auto kl_div_forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                            const kl_div_options& options, bool with_target_grad)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::forward_backward<V>(input.derived_cast(), target.derived_cast(), options, with_target_grad,
                                               "kl_div_forward_backward");
        }

        template <class L, class O, class E1, class E2>
        inline void kl_div_forward_backward_out(L& loss, O& grad_input, const xt::xexpression<E1>& input,
                                                const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            detail::forward_backward_out<V>(loss, grad_input, static_cast<O*>(nullptr), input.derived_cast(),
                                            target.derived_cast(), options);
        }

        template <class L, class O, class P, class E1, class E2>
        inline void kl_div_forward_backward_out(L& loss, O& grad_input, P& grad_target,
                                                const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                                const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            detail::forward_backward_out<V>(loss, grad_input, &grad_target, input.derived_cast(), target.derived_cast(),
                                            options);
        }
    }
}

#endif
