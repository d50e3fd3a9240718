/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_POINTWISE_RUN_HPP
#define XLOSS_DETAIL_ENGINE_POINTWISE_RUN_HPP

// The bodies of a pointwise loss's calls: each chooses the option path (weights, axes, logits
// input) or the fused pass, into new arrays or the caller's outputs.

#include <stdexcept>
#include <string>
#include <type_traits>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../pointwise_result.hpp"
#include "../core/vocabulary.hpp"
#include "../core/allocate.hpp"
#include "../core/error.hpp"
#include "../core/output.hpp"
#include "../core/overlap.hpp"
#include "pointwise_call.hpp"
#include "pointwise_general.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// kl_div(): the option path when the options need it, else one pass.
            template <class V, class E1, class E2, class Options>
            inline xt::xarray<V> loss(const E1& x, const E2& t, const Options& options, const char* func)
            {
                if (needs_general(options))
                {
                    return general_forward<V>(x, t, no_sample_weight{}, options, func);
                }
                const loss_setup s = make_setup(x, t, options, func);
                const bool reduce = options.reduction() != reduction::none;
                xt::xarray<V> out = new_array<V>(reduce ? shape_type{} : s.shape);
                const double value =
                    pointwise_definition_t<Options>::with_ops(options,
                                                              [&](const auto& ops)
                                                              {
                                                                  return loss_pass<V>(ops, x, t, s, reduce, out.data());
                                                              });
                if (reduce)
                {
                    out() = static_cast<V>(value);
                }
                return out;
            }

            /// kl_div_backward() (A = pointwise_wrt::input) or kl_div_target_backward() (pointwise_wrt::target).
            template <class V, pointwise_wrt A, class G, class E1, class E2, class Options>
            inline xt::xarray<V> gradient_of(const G& grad_output, const E1& x, const E2& t, const Options& options,
                                             const char* func)
            {
                if (needs_general(options))
                {
                    return general_gradient<V, A>(grad_output, x, t, no_sample_weight{}, options, func);
                }
                return gradient<V, A>(grad_output, x, t, options, func);
            }

            /// kl_div() into a caller's output; out stays untouched if anything throws.
            template <class V, class O, class E1, class E2, class Options>
            inline O& loss_out(O& out, const E1& x, const E2& t, const Options& options, const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                const shape_type loss_shape = make_plan(s, options, func).out_shape;
                const bool fits = check_loss_out(out, loss_shape, func, "out");
                V* data = nullptr;
                if constexpr (!std::is_arithmetic<O>::value)
                {
                    data = fits && !loss_shape.empty() ? writable_data<V>(out) : nullptr;
                }
                // A loss written over what the pass still reads is computed aside.
                if (needs_general(options) || (!fits && !loss_shape.empty()) || (!loss_shape.empty() && !data)
                    || overlaps_inputs(data, size_of(loss_shape), x, t))
                {
                    assign_loss(out, loss<V>(x, t, options, func)); // computed aside, then assigned
                    return out;
                }
                const bool reduce = loss_shape.empty();
                const double value =
                    pointwise_definition_t<Options>::with_ops(options,
                                                              [&](const auto& ops)
                                                              {
                                                                  return loss_pass<V>(ops, x, t, s, reduce, data);
                                                              });
                if (reduce)
                {
                    store_loss(out, value);
                }
                return out;
            }

            template <class V, pointwise_wrt A, class O, class G, class E1, class E2, class Options>
            inline O& gradient_out(O& out, const G& grad_output, const E1& x, const E2& t, const Options& options,
                                   const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                constexpr bool of_target = A == pointwise_wrt::target;
                const shape_type& shape = arg_shape<A>(s);
                const bool same_shape = check_out_shape(out, shape, func, of_target ? "grad_target" : "grad_input",
                                                        of_target ? "the target's shape" : "the input's shape");
                if (needs_general(options))
                {
                    assign_out(out, general_gradient<V, A>(grad_output, x, t, no_sample_weight{}, options, func));
                    return out;
                }
                V* data = same_shape && shape == s.shape ? writable_data<V>(out) : nullptr;
                if (!data || overlaps_inputs(data, size_of(shape), x, t, grad_output))
                {
                    assign_out(out, gradient<V, A>(grad_output, x, t, options, func));
                    return out;
                }
                gradient_into<V, A>(data, grad_output, x, t, s, options, func);
                return out;
            }

            template <class V, class E1, class E2, class Options>
            inline pointwise_result<V> forward_backward(const E1& x, const E2& t, const Options& options,
                                                        bool with_target_grad, const char* func)
            {
                pointwise_result<V> r;
                if (needs_general(options))
                {
                    r.loss = general_forward<V>(x, t, no_sample_weight{}, options, func);
                    r.grad_input =
                        general_gradient<V, pointwise_wrt::input>(1.0, x, t, no_sample_weight{}, options, func);
                    r.grad_target =
                        with_target_grad
                            ? general_gradient<V, pointwise_wrt::target>(1.0, x, t, no_sample_weight{}, options, func)
                            : new_array<V>({0});
                    return r;
                }
                const loss_setup s = make_setup(x, t, options, func);
                const bool reduce = options.reduction() != reduction::none;
                r.loss = new_array<V>(reduce ? shape_type{} : s.shape);
                xt::xarray<V> gx = new_array<V>(s.shape);
                xt::xarray<V> gt = new_array<V>(with_target_grad ? s.shape : shape_type{0});
                pointwise_outputs<V> out;
                out.loss = r.loss.data();
                out.grad_input = gx.data();
                out.grad_target = with_target_grad ? gt.data() : nullptr;
                out.grad_scale = static_cast<V>(1. / s.divisor);
                const double value =
                    pointwise_definition_t<Options>::with_ops(options,
                                                              [&](const auto& ops)
                                                              {
                                                                  return fused_pass<V>(ops, x, t, s, reduce, out);
                                                              });
                if (reduce)
                {
                    r.loss() = static_cast<V>(value);
                }
                r.grad_input = sum_to_shape(std::move(gx), s.input_shape);
                r.grad_target = with_target_grad ? sum_to_shape(std::move(gt), s.target_shape) : std::move(gt);
                return r;
            }

            /// The target's gradient not asked for (forward_backward_out with two outputs).
            struct no_output
            {
            };

            /**
             * The caller's outputs as the fused pass writes them in place (pointers of the broadcast
             * shape), with `in_place` false where it cannot: an output of another shape than the
             * broadcast one, one xtensor would resize, one not contiguous, one overlapping an input.
             */
            template <class V, class L, class O, class P, class E1, class E2>
            inline pointwise_outputs<V> in_place_outputs(L& loss, O& grad_input, P& grad_target, const E1& x,
                                                         const E2& t, const loss_setup& s, const shape_type& loss_shape,
                                                         bool reduce, const char* func, bool& in_place)
            {
                constexpr bool target = !std::is_same<P, no_output>::value;
                bool fit = check_loss_out(loss, loss_shape, func, "loss");
                fit = check_out_shape(grad_input, s.input_shape, func, "grad_input", "the input's shape") && fit;
                pointwise_outputs<V> out;
                if constexpr (target)
                {
                    fit =
                        check_out_shape(grad_target, s.target_shape, func, "grad_target", "the target's shape") && fit;
                }
                const bool same_shapes = fit && s.input_shape == s.shape && s.target_shape == s.shape;
                if (same_shapes)
                {
                    out.grad_input = writable_data<V>(grad_input);
                    if constexpr (target)
                    {
                        out.grad_target = writable_data<V>(grad_target);
                    }
                }
                if constexpr (!std::is_arithmetic<L>::value)
                {
                    out.loss = reduce ? nullptr : writable_data<V>(loss);
                }
                const std::size_t n = size_of(s.shape);
                const bool overlap = overlaps_inputs(out.grad_input, n, x, t)
                                     || overlaps_inputs(out.grad_target, n, x, t)
                                     || overlaps_inputs(out.loss, reduce ? 0 : n, x, t);
                in_place = out.grad_input && (!target || out.grad_target) && (reduce || out.loss) && !overlap;
                out.grad_scale = static_cast<V>(1. / s.divisor);
                return out;
            }

            /// The fused pass straight into the caller's outputs, or through forward_backward(); P is
            /// no_output when the target's gradient is not asked for.
            template <class V, class L, class O, class P, class E1, class E2, class Options>
            inline void forward_backward_out(L& loss, O& grad_input, P& grad_target, const E1& x, const E2& t,
                                             const Options& options, const char* func)
            {
                constexpr bool target = !std::is_same<P, no_output>::value;
                const loss_setup s = make_setup(x, t, options, func);
                const shape_type loss_shape = make_plan(s, options, func).out_shape;
                const bool reduce = options.reduction() != reduction::none;
                bool in_place = false;
                const pointwise_outputs<V> out =
                    in_place_outputs<V>(loss, grad_input, grad_target, x, t, s, loss_shape, reduce, func, in_place);
                if (!in_place || needs_general(options))
                {
                    auto r = forward_backward<V>(x, t, options, target, func);
                    assign_loss(loss, r.loss);
                    assign_out(grad_input, r.grad_input);
                    if constexpr (target)
                    {
                        assign_out(grad_target, r.grad_target);
                    }
                    return;
                }
                const double value =
                    pointwise_definition_t<Options>::with_ops(options,
                                                              [&](const auto& ops)
                                                              {
                                                                  return fused_pass<V>(ops, x, t, s, reduce, out);
                                                              });
                if (reduce)
                {
                    store_loss(loss, value);
                }
            }
        }
    }
}

#endif
