/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_GENERAL_HPP
#define XLOSS_DETAIL_KL_DIV_GENERAL_HPP

// The loss with the options that change its shape or its input (MXNet Gluon's
// semantics and more): a log-softmax of logits, a scalar and a sample weight,
// a reduction over chosen axes. It runs the same pointwise kernels into arrays
// of the broadcast shape, then weights, reduces and, for logits, passes the
// gradient through the log-softmax. The plain options never come here.

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)

#include "../kl_div_options.hpp"
#include "classify.hpp"
#include "error.hpp"
#include "kl_div_impl.hpp"
#include "softmax_kernels.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Whether the options need the general path.
            inline bool needs_general(const kl_div_options& options) noexcept
            {
                return options.input_logits() || options.has_axes() || options.weight() != 1.;
            }

            /// What the reduction does to the broadcast shape.
            struct reduce_plan
            {
                bool all;                      ///< one number: none of the axes kept
                std::vector<std::size_t> axes; ///< the axes summed over, when not all
                shape_type out_shape;          ///< the loss's shape
                shape_type keep_shape;         ///< the broadcast shape with 1 on the summed axes
                double divisor;                ///< the sum is divided by this
            };

            inline reduce_plan make_plan(const loss_setup& s, const kl_div_options& options, const char* func)
            {
                reduce_plan p;
                const reduction r = options.reduction();
                p.divisor = s.divisor;
                p.keep_shape = s.shape;
                if (!options.has_axes())
                {
                    p.all = r != reduction::none;
                    if (p.all)
                    {
                        p.keep_shape = shape_type(s.shape.size(), 1);
                    }
                    else
                    {
                        p.out_shape = s.shape;
                    }
                    return p;
                }
                if (r == reduction::none || r == reduction::batchmean)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                        + ": axes (or per_sample) need reduction "
                                                        + "'sum' or 'mean', not '" + std::string(to_string(r)) + "'"));
                }
                const std::size_t ndim = s.shape.size();
                std::vector<bool> chosen(ndim, false);
                for (const std::ptrdiff_t* a = options.axes_begin(); a != options.axes_end(); ++a)
                {
                    const std::size_t k =
                        normalize_axis(*a, ndim, func, options.axes_exclude() ? "batch_axis" : "axis in axes");
                    if (chosen[k])
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": axis "
                                                            + std::to_string(*a) + " appears twice in axes"));
                    }
                    chosen[k] = true;
                }
                p.all = false;
                double count = 1.;
                for (std::size_t k = 0; k < ndim; ++k)
                {
                    if (chosen[k] != options.axes_exclude())
                    {
                        p.axes.push_back(k);
                        p.keep_shape[k] = 1;
                        count *= static_cast<double>(s.shape[k]);
                    }
                    else
                    {
                        p.out_shape.push_back(s.shape[k]);
                    }
                }
                p.divisor = r == reduction::sum ? 1. : (options.divisor() > 0. ? options.divisor() : count);
                return p;
            }

            /// The log-softmax of e along `axis`, into a new array; throws for a row of -inf only.
            template <class V, class E>
            inline xt::xarray<V> log_softmax(const E& e, std::ptrdiff_t axis, const char* func, const char* name,
                                             const char* axis_name)
            {
                using batch = default_batch<V>;
                xt::xarray<V> z = e;
                const shape_type shape = to_shape(z.shape());
                const row_layout rows(shape, normalize_axis(axis, shape.size(), func, axis_name));
                std::vector<V> buf(rows.length);
                for (std::size_t k = 0; k < rows.rows && rows.length > 0; ++k)
                {
                    const V* row = rows.read(z.data(), k, buf.data());
                    const V m = row_max<batch>(row, rows.length);
                    if (is_neg_inf(m))
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": " + name + " row " + std::to_string(k) + " along "
                            + axis_name + " " + std::to_string(axis) + " is all -inf: its softmax is undefined"));
                    }
                    const V lse = static_cast<V>(row_logsumexp<batch>(row, rows.length, m));
                    V* out = rows.write(z.data(), k, buf.data());
                    row_subtract<batch>(row, out, rows.length, lse);
                    rows.scatter(z.data(), k, out);
                }
                return z;
            }

            /// Calls f with the input's log-probabilities: the input, or the log-softmax of its logits.
            template <class V, class E, class F>
            inline decltype(auto) with_log_probs(const E& input, const kl_div_options& options, const char* func, F&& f)
            {
                if (!options.input_logits())
                {
                    return f(input);
                }
                const xt::xarray<V> x = log_softmax<V>(input, options.softmax_axis(), func, "input", "softmax_axis");
                return f(x);
            }

            /// Checks that the sample weight (when given) broadcasts to the loss's broadcast shape.
            template <class W>
            inline void check_sample_weight(const W* w, const loss_setup& s, const char* func)
            {
                if (w && !broadcasts_to(to_shape(w->shape()), s.shape))
                {
                    detail::raise(std::invalid_argument(
                        std::string("xloss::") + func + ": sample_weight of shape " + shape_to_string(w->shape())
                        + " does not broadcast to the shape " + shape_to_string(s.shape) + " of input and target"));
                }
            }

            /// The loss with weights, axes and logits; `w` is the sample weight or null.
            template <class V, class E1, class E2, class W>
            inline xt::xarray<V> general_forward(const E1& input, const E2& t, const W* w,
                                                 const kl_div_options& options, const char* func)
            {
                const loss_setup s = make_setup(input, t, options, func);
                const reduce_plan plan = make_plan(s, options, func);
                check_sample_weight(w, s, func);
                xt::xarray<V> terms = xt::xarray<V>::from_shape(s.shape);
                with_log_probs<V>(input, options, func,
                                  [&](const auto& x)
                                  {
                                      with_ops(options,
                                               [&](const auto& ops)
                                               {
                                                   fused_pass<V>(ops, x, t, s, false, terms.data(), V(0), nullptr,
                                                                 nullptr);
                                               });
                                  });
                // MXNet's order: the sample weight, then the scalar weight.
                if (w)
                {
                    terms *= xt::broadcast(xt::cast<V>(*w), s.shape);
                }
                if (options.weight() != 1.)
                {
                    terms *= static_cast<V>(options.weight());
                }
                if (options.reduction() == reduction::none)
                {
                    return terms;
                }
                if (plan.all)
                {
                    xt::xarray<V> r = xt::xarray<V>::from_shape({});
                    double total = 0.;
                    for (V v : terms)
                    {
                        total += static_cast<double>(v);
                    }
                    r() = static_cast<V>(total / plan.divisor);
                    return r;
                }
                xt::xarray<V> r = xt::cast<V>(sum_axes(terms, plan.axes, false) / plan.divisor);
                r.reshape(plan.out_shape);
                return r;
            }

            /**
             * What multiplies each pointwise gradient: grad_output spread over the broadcast shape,
             * divided by the divisor, times the weights.
             */
            template <class V, class G, class W>
            inline xt::xarray<V> gradient_scale(const G& grad_output, const W* w, const loss_setup& s,
                                                const reduce_plan& plan, const kl_div_options& options,
                                                const char* func)
            {
                xt::xarray<V> scale = xt::xarray<V>::from_shape(s.shape);
                if constexpr (xt::is_xexpression<G>::value)
                {
                    static_assert(std::is_arithmetic<typename G::value_type>::value,
                                  "xloss: grad_output must hold arithmetic values");
                    const shape_type grad_shape = to_shape(grad_output.shape());
                    if (!broadcasts_to(grad_shape, plan.out_shape))
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": grad_output of shape " + shape_to_string(grad_shape)
                            + " does not broadcast to the loss's " + "shape " + shape_to_string(plan.out_shape)));
                    }
                    xt::xarray<V> g = xt::broadcast(xt::cast<V>(grad_output), plan.out_shape);
                    g.reshape(plan.keep_shape);
                    scale = xt::broadcast(g, s.shape) / static_cast<V>(plan.divisor);
                }
                else
                {
                    static_assert(std::is_arithmetic<G>::value,
                                  "xloss: grad_output must be an xtensor expression or an arithmetic scalar");
                    scale.fill(static_cast<V>(static_cast<double>(grad_output) / plan.divisor));
                }
                if (w)
                {
                    scale *= xt::broadcast(xt::cast<V>(*w), s.shape);
                }
                if (options.weight() != 1.)
                {
                    scale *= static_cast<V>(options.weight());
                }
                return scale;
            }

            /// The gradient w.r.t. the input (its logits, with input_logits) or the target.
            template <class V, bool wrt_target, class G, class E1, class E2, class W>
            inline xt::xarray<V> general_gradient(const G& grad_output, const E1& input, const E2& t, const W* w,
                                                  const kl_div_options& options, const char* func)
            {
                const loss_setup s = make_setup(input, t, options, func);
                const reduce_plan plan = make_plan(s, options, func);
                check_sample_weight(w, s, func);
                const xt::xarray<V> scale = gradient_scale<V>(grad_output, w, s, plan, options, func);
                return with_log_probs<V>(
                    input, options, func,
                    [&](const auto& x)
                    {
                        xt::xarray<V> full = xt::xarray<V>::from_shape(s.shape);
                        with_ops(options,
                                 [&](const auto& ops)
                                 {
                                     if constexpr (wrt_target)
                                     {
                                         gradient_pass<V>(ops.target_grad, scale, x, t, s, full.data());
                                     }
                                     else
                                     {
                                         gradient_pass<V>(ops.input_grad, scale, x, t, s, full.data());
                                     }
                                 });
                        xt::xarray<V> grad = sum_to_shape(std::move(full), wrt_target ? s.target_shape : s.input_shape);
                        if (!wrt_target && options.input_logits())
                        {
                            // Through the log-softmax: dz = dx - softmax(z) * sum(dx) along the axis.
                            const std::size_t axis =
                                normalize_axis(options.softmax_axis(), x.dimension(), func, "softmax_axis");
                            const xt::xarray<V> total = xt::cast<V>(sum_axes(grad, {axis}, true));
                            grad -= xt::exp(x) * total;
                        }
                        return grad;
                    });
            }
        }
    }
}

#endif
