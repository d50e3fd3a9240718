/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_POINTWISE_GENERAL_HPP
#define XLOSS_DETAIL_ENGINE_POINTWISE_GENERAL_HPP

// A pointwise loss with the options that change its shape or its input (MXNet Gluon's
// semantics and more): a log-softmax of logits, a scalar and a sample weight,
// a reduction over chosen axes. It runs the same pointwise kernels, a run along
// the last axis at a time, with the weights and the reduction folded in (no array
// of the broadcast shape beside the result), and, for logits, passes the gradient
// through the log-softmax (which it computes into a new array). The plain options
// never come here.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xnoalias.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)

#include "../core/allocate.hpp"
#include "../core/axis_sum.hpp"
#include "../core/error.hpp"
#include "../core/rows.hpp"
#include "../kernels/batch_loops.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/softmax.hpp"
#include "pointwise_call.hpp"
#include "walk.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// No sample weight: every term of the option path weighs the scalar weight alone.
            struct no_sample_weight
            {
            };

            /// Where the option path's terms go: written (the `none` loss), summed into one total, or
            /// summed into the sums of the plan's kept axes.
            template <class V>
            struct term_destination
            {
                enum class kind
                {
                    write,
                    total,
                    axis_sums
                };

                kind what = kind::total;
                V* loss = nullptr;                        ///< kind::write: the loss, of the broadcast shape
                std::vector<double>* axis_sums = nullptr; ///< kind::axis_sums: of the plan's keep_shape
            };

            /// Whether the options need the general path.
            template <class Options>
            inline bool needs_general(const Options& options) noexcept
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

            template <class Options>
            inline reduce_plan make_plan(const loss_setup& s, const Options& options, const char* func)
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

            /// The log-softmax of e along `axis`, into a new array; throws for a row of -inf, and for one
            /// whose finite logits span more than the value type's range (its log-probabilities would
            /// not be representable: x - max overflows to -inf, a masked class).
            template <class V, class E>
            inline xt::xarray<V> log_softmax(const E& e, std::ptrdiff_t axis, const char* func, const char* name,
                                             const char* axis_name)
            {
                using batch = default_batch<V>;
                const shape_type shape = to_shape(e.shape());
                xt::xarray<V> z = new_array<V>(shape); // advised for huge pages when large
                xt::noalias(z) = e;
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
                    if (row_spread_overflows<batch>(row, rows.length, m, 1.))
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": " + name + " row " + std::to_string(k) + " along "
                            + axis_name + " " + std::to_string(axis) + " spans more than the largest "
                            + (sizeof(V) == sizeof(float) ? "float" : "double")
                            + " (max - min of its logits): its log-probabilities are not representable"));
                    }
                    const V lse = static_cast<V>(row_logsumexp<batch>(row, rows.length, m));
                    V* out = rows.write(z.data(), k, buf.data());
                    row_subtract<batch>(row, out, rows.length, lse);
                    rows.scatter(z.data(), k, out);
                }
                return z;
            }

            /// Checks that the sample weight broadcasts to the loss's broadcast shape.
            template <class W>
            inline void check_sample_weight(const W& w, const loss_setup& s, const char* func)
            {
                if (!broadcasts_to(to_shape(w.shape()), s.shape))
                {
                    detail::raise(std::invalid_argument(
                        std::string("xloss::") + func + ": sample_weight of shape " + shape_to_string(w.shape())
                        + " does not broadcast to the shape " + shape_to_string(s.shape) + " of input and target"));
                }
            }

            inline void check_sample_weight(no_sample_weight, const loss_setup&, const char*) noexcept
            {
            }

            /// An op times a per-element weight (taken as its g) and the scalar weight k: MXNet's order.
            template <class Op, class V>
            struct weighted_term
            {
                Op op;
                V k;

                template <class B>
                XLOSS_INLINE B operator()(const B& x, const B& t, const B& w) const noexcept
                {
                    return op(x, t, w) * w * B(k);
                }
            };

            /// The sample weight (cast to V, in the loss's rank) beside the broadcast shape, and the scalar
            /// weight: what multiplies each term of the general path.
            template <class V>
            struct weights
            {
                xt::xarray<V> sample; ///< empty without a sample weight
                shape_type strides;   ///< the sample weight's broadcast_strides
                V k;                  ///< the scalar weight
                bool has_sample;

                template <class W, class Options>
                weights(const W& w, const loss_setup& s, const Options& options)
                    : sample(xt::cast<V>(w))
                    , strides(broadcast_strides(aligned_shape(to_shape(sample.shape()), s.shape.size())))
                    , k(static_cast<V>(options.weight()))
                    , has_sample(true)
                {
                }

                template <class Options>
                weights(no_sample_weight, const loss_setup& s, const Options& options)
                    : strides(s.shape.size(), 0)
                    , k(static_cast<V>(options.weight()))
                    , has_sample(false)
                {
                }

                /// Calls f with the sample weight of a run: a pointer, or one value (also without one).
                template <class F>
                XLOSS_INLINE void with_run(std::size_t first, std::size_t step, F&& f) const
                {
                    if (has_sample && step != 0)
                    {
                        f(sample.data() + first);
                    }
                    else
                    {
                        f(scalar_arg<V>{has_sample ? sample.data()[first] : V(1)});
                    }
                }
            };

            /**
             * Calls f(begin, end) for consecutive pieces of [0, n) (partition_size elements), on
             * `threads` OpenMP threads when `parallel`, in order otherwise.
             */
            template <class F>
            inline void for_each_piece(std::size_t n, int threads, bool parallel, F&& f)
            {
                const std::ptrdiff_t pieces = static_cast<std::ptrdiff_t>((n + partition_size - 1) / partition_size);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel && threads > 1 && pieces > 1)
#else
                (void)threads;
                (void)parallel;
#endif
                for (std::ptrdiff_t p = 0; p < pieces; ++p)
                {
                    const std::size_t begin = static_cast<std::size_t>(p) * partition_size;
                    f(begin, std::min(begin + partition_size, n));
                }
            }

            /// A weight argument moved `c` elements on (a pointer moves, one value stays).
            template <class V>
            XLOSS_INLINE const V* offset_arg(const V* p, std::size_t c) noexcept
            {
                return p + c;
            }

            template <class V>
            XLOSS_INLINE scalar_arg<V> offset_arg(scalar_arg<V> v, std::size_t) noexcept
            {
                return v;
            }

            /// One run of weighted_pass: its terms written, summed into acc, or summed into the axis sums.
            template <class B, class Op, class W>
            XLOSS_INLINE void run_terms(const Op& op, const value_type_t<B>* x, const value_type_t<B>* t, W w,
                                        std::size_t m, const broadcast_run<2>& run, std::size_t i,
                                        const term_destination<value_type_t<B>>& to, block_sum<B>& acc)
            {
                using V = value_type_t<B>;
                using kind = typename term_destination<V>::kind;
                if (to.what == kind::write)
                {
                    map<B>(op, x, t, w, to.loss + i, m);
                }
                else if (to.what == kind::total)
                {
                    acc.add(op, x, t, w, m);
                }
                else if (run.step[1] == 0)
                {
                    block_sum<B> row;
                    row.add(op, x, t, w, m);
                    (*to.axis_sums)[run.first[1]] += row.total();
                }
                else
                {
                    // The last axis is kept: each term has its own sum.
                    alignas(64) V buf[chunk_size];
                    for (std::size_t c = 0; c < m; c += chunk_size)
                    {
                        const std::size_t len = std::min(chunk_size, m - c);
                        map<B>(op, x + c, t + c, offset_arg(w, c), buf, len);
                        for (std::size_t j = 0; j < len; ++j)
                        {
                            (*to.axis_sums)[run.first[1] + c + j] += static_cast<double>(buf[j]);
                        }
                    }
                }
            }

            /**
             * The weighted terms over the broadcast shape, a run at a time, to their destination: written
             * (the `none` loss), summed over all elements (returned), or summed over the plan's axes.
             * Nothing of the broadcast shape is allocated.
             */
            template <class V, class Term>
            inline double weighted_pass(const Term& term, const V* x, const V* t, const weights<V>& w,
                                        const loss_setup& s, const reduce_plan& plan, const term_destination<V>& to)
            {
                using batch = default_batch<V>;
                const weighted_term<Term, V> op{term, w.k};
                const std::size_t n = s.size;
                const shape_type out_strides = broadcast_strides(plan.keep_shape);
                const shape_type* const parts[2] = {&w.strides, &out_strides};
                std::vector<double> totals((n + partition_size - 1) / partition_size, 0.);
                for_each_piece(n, s.threads, to.what != term_destination<V>::kind::axis_sums,
                               [&](std::size_t begin, std::size_t end)
                               {
                                   block_sum<batch> acc;
                                   for_each_run(s.shape, parts, begin, end,
                                                [&](std::size_t i, std::size_t m, const broadcast_run<2>& run)
                                                {
                                                    w.with_run(run.first[0], run.step[0],
                                                               [&](auto wr)
                                                               {
                                                                   run_terms<batch>(op, x + i, t + i, wr, m, run, i, to,
                                                                                    acc);
                                                               });
                                                });
                                   totals[begin / partition_size] = acc.total();
                               });
                double total = 0.;
                for (double v : totals)
                {
                    total += v;
                }
                return total;
            }

            /**
             * Calls f(ops, x, t) with the selected op set and x and t as contiguous_refs of the broadcast
             * shape: the pointwise passes of the general path walk pointers only, whatever the expressions.
             */
            template <class V, class E1, class E2, class F, class Options>
            inline void with_contiguous(const E1& x, const E2& t, const loss_setup& s, const Options& options, F&& f)
            {
                xt::xarray<V> xbuf, tbuf;
                const contiguous_ref<V> xr = as_contiguous<V>(x, s.shape, xbuf);
                const contiguous_ref<V> tr = as_contiguous<V>(t, s.shape, tbuf);
                pointwise_definition_t<Options>::with_ops(options,
                                                          [&](const auto& ops)
                                                          {
                                                              f(ops, xr, tr);
                                                          });
            }

            /// The loss with weights, axes and logits; `w` is the sample weight or no_sample_weight.
            template <class V, class E1, class E2, class W, class Options>
            inline xt::xarray<V> general_forward(const E1& input, const E2& t, const W& w, const Options& options,
                                                 const char* func)
            {
                const loss_setup s = make_setup(input, t, options, func);
                const reduce_plan plan = make_plan(s, options, func);
                check_sample_weight(w, s, func);
                const weights<V> wt(w, s, options);
                const bool none = options.reduction() == reduction::none;
                xt::xarray<V> r = new_array<V>(none ? s.shape : plan.out_shape);
                std::vector<double> axis_sums(none || plan.all ? 0 : size_of(plan.keep_shape), 0.);
                using kind = typename term_destination<V>::kind;
                const term_destination<V> to{none ? kind::write : (plan.all ? kind::total : kind::axis_sums), r.data(),
                                             &axis_sums};
                double total = 0.;
                auto pass = [&](const auto& ops, auto xr, auto tr)
                {
                    total = weighted_pass<V>(ops.term, xr.data, tr.data, wt, s, plan, to);
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
                if (plan.all)
                {
                    r() = static_cast<V>(total / plan.divisor);
                }
                else if (!none)
                {
                    for (std::size_t k = 0; k < axis_sums.size(); ++k)
                    {
                        r.data()[k] = static_cast<V>(axis_sums[k] / plan.divisor);
                    }
                }
                return r;
            }

            /**
             * One gradient (`Op`) of the general path over the broadcast shape into `out`: each element's
             * grad_output (`go`, of the plan's keep_shape, or one value `go_value` when null) divided by
             * the divisor, times the weights. Nothing of the broadcast shape is allocated.
             */
            template <class V, class Op>
            inline void weighted_gradient_pass(Op op, const V* go, V go_value, const V* x, const V* t,
                                               const weights<V>& w, const loss_setup& s, const reduce_plan& plan,
                                               V* out)
            {
                using batch = default_batch<V>;
                const shape_type go_strides = broadcast_strides(plan.keep_shape);
                const shape_type* const parts[2] = {&w.strides, &go_strides};
                const V divisor = static_cast<V>(plan.divisor);
                // grad_output over the divisor, times the weights (MXNet's order).
                auto scale = [&](std::size_t wj, std::size_t gj)
                {
                    const V g = go ? go[gj] / divisor : go_value;
                    return (w.has_sample ? g * w.sample.data()[wj] : g) * w.k;
                };
                for_each_piece(s.size, s.threads, true,
                               [&](std::size_t begin, std::size_t end)
                               {
                                   for_each_run(s.shape, parts, begin, end,
                                                [&](std::size_t i, std::size_t m, const broadcast_run<2>& run)
                                                {
                                                    const bool one_scale = (run.step[0] == 0 || !w.has_sample)
                                                                           && (run.step[1] == 0 || !go);
                                                    if (one_scale)
                                                    {
                                                        const scalar_arg<V> g{scale(run.first[0], run.first[1])};
                                                        map<batch>(op, x + i, t + i, g, out + i, m);
                                                        return;
                                                    }
                                                    alignas(64) V buf[chunk_size];
                                                    for (std::size_t c = 0; c < m; c += chunk_size)
                                                    {
                                                        const std::size_t len = std::min(chunk_size, m - c);
                                                        for (std::size_t j = 0; j < len; ++j)
                                                        {
                                                            buf[j] = scale(run.first[0] + (c + j) * run.step[0],
                                                                           run.first[1] + (c + j) * run.step[1]);
                                                        }
                                                        map<batch>(op, x + i + c, t + i + c, buf, out + i + c, len);
                                                    }
                                                });
                               });
            }

            /// The gradient w.r.t. the input (its logits, with input_logits) or the target.
            template <class V, pointwise_wrt A, class G, class E1, class E2, class W, class Options>
            inline xt::xarray<V> general_gradient(const G& grad_output, const E1& input, const E2& t, const W& w,
                                                  const Options& options, const char* func)
            {
                const loss_setup s = make_setup(input, t, options, func);
                const reduce_plan plan = make_plan(s, options, func);
                check_sample_weight(w, s, func);
                const weights<V> wt(w, s, options);
                // grad_output: one value, or values of the loss's shape spread to keep_shape's layout.
                xt::xarray<V> spread;
                bool per_element = false;
                V go_value = 0;
                visit_grad_output(
                    grad_output, plan.out_shape, func,
                    [&](double g)
                    {
                        go_value = static_cast<V>(g / plan.divisor);
                    },
                    [&](const auto& g)
                    {
                        spread = xt::broadcast(xt::cast<V>(g), plan.out_shape);
                        per_element = true;
                    });
                xt::xarray<V> full = new_array<V>(s.shape);
                auto pass = [&](const auto& ops, auto xr, auto tr)
                {
                    weighted_gradient_pass<V>(grad_op<A>(ops), per_element ? spread.data() : nullptr, go_value, xr.data,
                                              tr.data, wt, s, plan, full.data());
                };
                if (!options.input_logits())
                {
                    with_contiguous<V>(input, t, s, options, pass);
                    return sum_to_shape(std::move(full), arg_shape<A>(s));
                }
                const xt::xarray<V> x = log_softmax<V>(input, options.softmax_axis(), func, "input", "softmax_axis");
                with_contiguous<V>(x, t, s, options, pass);
                xt::xarray<V> grad = sum_to_shape(std::move(full), arg_shape<A>(s));
                if constexpr (A == pointwise_wrt::input)
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
