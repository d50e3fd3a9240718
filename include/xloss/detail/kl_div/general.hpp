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
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)

#include "../../kl_div_options.hpp"
#include "../core/error.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/softmax.hpp"
#include "call.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// No sample weight, for the general path.
            template <class V>
            constexpr const xt::xarray<V>* no_weight = nullptr;

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
                p.divisor = reduction_divisor(r, options.divisor(), count, count); // r is sum or mean here
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

            /// `terms` (of the broadcast shape) times the sample weight, then the scalar weight (MXNet's order).
            template <class V, class W>
            inline void apply_weights(xt::xarray<V>& terms, const W* w, const loss_setup& s,
                                      const kl_div_options& options)
            {
                if (w)
                {
                    const xt::xarray<V> wv = xt::cast<V>(*w);
                    apply_broadcast(terms.data(), s.shape, wv.data(), to_shape(wv.shape()),
                                    [](V a, V b)
                                    {
                                        return a * b;
                                    });
                }
                if (options.weight() != 1.)
                {
                    const V k = static_cast<V>(options.weight());
                    for (V& v : terms)
                    {
                        v *= k;
                    }
                }
            }

            /**
             * Calls f(ops, x, t) with the selected op set and x and t as contiguous_refs of the broadcast
             * shape: the pointwise passes of the general path walk pointers only, whatever the expressions.
             */
            template <class V, class E1, class E2, class F>
            inline void with_contiguous(const E1& x, const E2& t, const loss_setup& s, const kl_div_options& options,
                                        F&& f)
            {
                xt::xarray<V> xbuf, tbuf;
                const contiguous_ref<V> xr = as_contiguous<V>(x, s.shape, xbuf);
                const contiguous_ref<V> tr = as_contiguous<V>(t, s.shape, tbuf);
                with_ops(options,
                         [&](const auto& ops)
                         {
                             f(ops, xr, tr);
                         });
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
                auto pass = [&](const auto& ops, auto xr, auto tr)
                {
                    loss_pass<V>(ops, xr, tr, s, false, terms.data());
                };
                if (options.input_logits())
                {
                    const xt::xarray<V> x =
                        log_softmax<V>(input, options.softmax_axis(), func, "input", "softmax_axis");
                    with_contiguous<V>(x, t, s, options, pass);
                }
                else
                {
                    with_contiguous<V>(input, t, s, options, pass);
                }
                apply_weights(terms, w, s, options);
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
                xt::xarray<V> r = sum_axes<V>(terms, plan.axes, false, plan.divisor);
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
                visit_grad_output(
                    grad_output, plan.out_shape, func,
                    [&](double g)
                    {
                        scale.fill(static_cast<V>(g / plan.divisor));
                    },
                    [&](const auto& g)
                    {
                        const xt::xarray<V> spread = xt::broadcast(xt::cast<V>(g), plan.out_shape);
                        const V divisor = static_cast<V>(plan.divisor);
                        apply_broadcast(scale.data(), s.shape, spread.data(), plan.keep_shape,
                                        [divisor](V, V gv)
                                        {
                                            return gv / divisor;
                                        });
                    });
                apply_weights(scale, w, s, options);
                return scale;
            }

            /// The gradient w.r.t. the input (its logits, with input_logits) or the target.
            template <class V, kl_wrt A, class G, class E1, class E2, class W>
            inline xt::xarray<V> general_gradient(const G& grad_output, const E1& input, const E2& t, const W* w,
                                                  const kl_div_options& options, const char* func)
            {
                const loss_setup s = make_setup(input, t, options, func);
                const reduce_plan plan = make_plan(s, options, func);
                check_sample_weight(w, s, func);
                const xt::xarray<V> scale = gradient_scale<V>(grad_output, w, s, plan, options, func);
                xt::xarray<V> full = xt::xarray<V>::from_shape(s.shape);
                auto pass = [&](const auto& ops, auto xr, auto tr)
                {
                    const contiguous_ref<V> g{scale.data()};
                    gradient_pass<V>(grad_op<A>(ops), g, xr, tr, s, full.data());
                };
                if (!options.input_logits())
                {
                    with_contiguous<V>(input, t, s, options, pass);
                    return sum_to_shape(std::move(full), arg_shape<A>(s));
                }
                const xt::xarray<V> x = log_softmax<V>(input, options.softmax_axis(), func, "input", "softmax_axis");
                with_contiguous<V>(x, t, s, options, pass);
                xt::xarray<V> grad = sum_to_shape(std::move(full), arg_shape<A>(s));
                if constexpr (A == kl_wrt::input)
                {
                    // Through the log-softmax: dz = dx - softmax(z) * sum(dx) along the axis.
                    const std::size_t axis =
                        normalize_axis(options.softmax_axis(), x.dimension(), func, "softmax_axis");
                    const xt::xarray<V> total = sum_axes<V>(grad, {axis}, true);
                    const V* px = x.data();
                    V* pg = grad.data();
                    for_each_broadcast_row(to_shape(grad.shape()), to_shape(total.shape()),
                                           [&](std::size_t i, std::size_t j, std::size_t inner, std::size_t step)
                                           {
                                               for (std::size_t k = 0; k < inner; ++k)
                                               {
                                                   pg[i + k] -= std::exp(px[i + k]) * total.data()[j + k * step];
                                               }
                                           });
                }
                return grad;
            }
        }
    }
}

#endif
