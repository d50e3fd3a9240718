/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CROSS_ENTROPY_ROWS_HPP
#define XLOSS_DETAIL_CROSS_ENTROPY_ROWS_HPP

// The rows of a cross-entropy from logits and class labels. With x' the (soft-capped) logits of a
// row, m' their max, Z = sum e^(x' - m'), lse = m' + log Z, y the label, w the class weights (1
// without), W their sum, eps the label smoothing and C the classes, a kept row's loss is
//   (1 - eps) w_y (lse - x'_y) + (eps / C) sum_j w_j (lse - x'_j) + z lse^2
// and its gradient w.r.t. x'_j is A q_j - (eps / C) w_j - (1 - eps) w_y [j = y], with q = softmax(x')
// and A = (1 - eps) w_y + (eps / C) W + 2 z lse; through the cap, times 1 - (x'_j / c)^2.
// Three reads of a row with gradients (max; sums, keeping e^(x' - m') in the gradient row; gradient),
// two for the loss alone. Rows run in groups on threads (row_groups.hpp).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include "../core/error.hpp"
#include "../core/labels.hpp"
#include "../core/rows.hpp"
#include "../engine/row_engine.hpp"
#include "../engine/row_groups.hpp"
#include "../kernels/batch_loops.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/fast_math.hpp"
#include "../kernels/simd.hpp"
#include "../kernels/softmax.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// What a cross-entropy run computes besides the plain negative log-likelihood.
            template <class V>
            struct cross_entropy_terms
            {
                double smoothing = 0.;     ///< eps
                double z_loss = 0.;        ///< z
                double softcap = 0.;       ///< c (0: none)
                const V* weight = nullptr; ///< one per class, or null
                double weight_total = 0.;  ///< W (the number of classes without weights)
            };

            /// The logits and labels a run reads.
            template <class V, class L>
            struct cross_entropy_source
            {
                const V* logits;
                const row_layout& rows;
                const shape_type& row_shape;
                const L* labels;
                long long ignore_index;
                const char* func;
                const std::size_t* row_ids = nullptr; ///< the caller's row of each row (errors name it), or null
                const V* targets = nullptr; ///< probability targets in the logits' layout (then no labels), or null
            };

            /// The rows of a cross-entropy of logits stored as S (the 16-bit types read into B's float row
            /// by row).
            template <class B, class L, class S = value_type_t<B>>
            class cross_entropy_rows
            {
            public:

                using V = value_type_t<B>;

                cross_entropy_rows(const cross_entropy_source<S, L>& source, const cross_entropy_terms<V>& terms)
                    : m_src(source)
                    , m_terms(terms)
                    , m_keep{source.labels, source.ignore_index}
                    , m_inv_cap(terms.softcap > 0. ? static_cast<V>(1. / terms.softcap) : V(0))
                    , m_cap(static_cast<V>(terms.softcap))
                    , m_share(static_cast<V>(terms.smoothing / static_cast<double>(source.rows.length)))
                {
                }

                /// Throws for a kept row whose softmax is undefined, before anything is written.
                void check_rows() const
                {
                    std::vector<V> buf(m_src.rows.template in_place<S, V>() ? 0 : m_src.rows.length);
                    for (std::size_t k = 0; k < m_src.rows.rows; ++k)
                    {
                        if (kept(k))
                        {
                            const V* x = m_src.rows.read(m_src.logits, k, buf.data());
                            const row_fault f = fault(x, row_max<B>(x, m_src.rows.length));
                            if (f != row_fault::none)
                            {
                                raise_fault(f, k);
                            }
                        }
                    }
                }

                /// Runs rows [range.first, range.last) into `out`; returns the sum of their losses.
                double run(row_range range, const row_outputs<S>& out, int threads, row_workspace<V>& workspace) const
                {
                    // Rows along an inner axis (or of a 16-bit type) are gathered, the targets' too, and
                    // their gradients written aside first.
                    const std::size_t area =
                        m_src.rows.template in_place<S, V>() ? 0 : (m_src.targets ? 3 : 2) * m_src.rows.length;
                    return run_row_groups(
                        range, row_team{team_size(threads), area}, workspace,
                        [&](std::size_t k, V* mine, row_fault& f)
                        {
                            return row(k, out, mine, f);
                        },
                        [&](row_fault f, std::size_t k)
                        {
                            raise_fault(f, k);
                        });
                }

            private:

                /// Whether row k counts: every row with probability targets, else a row whose label is kept.
                bool kept(std::size_t k) const noexcept
                {
                    return m_src.targets || m_keep(k);
                }

                /// A +inf logit, or a row of -inf (without NaN): no softmax.
                row_fault fault(const V* x, V m) const noexcept
                {
                    if (is_inf(m) && !is_neg_inf(m))
                    {
                        return row_fault::pos_inf;
                    }
                    if (is_neg_inf(m)
                        && std::none_of(x, x + m_src.rows.length,
                                        [](V v)
                                        {
                                            return is_nan(v);
                                        }))
                    {
                        return row_fault::all_neg_inf;
                    }
                    return row_fault::none;
                }

                [[noreturn]] void raise_fault(row_fault f, std::size_t k) const
                {
                    detail::raise(std::invalid_argument(
                        std::string("xloss::") + m_src.func + ": input row "
                        + row_index(m_src.row_ids ? m_src.row_ids[k] : k, m_src.row_shape)
                        + (f == row_fault::pos_inf ? " holds +inf" : " is all -inf") + ": its softmax is undefined"));
                }

                /// The logits as the loss sees them: c tanh(x / c) (Capped), or x.
                template <bool Capped>
                XLOSS_INLINE B capped(const B& x) const noexcept
                {
                    if constexpr (Capped)
                    {
                        return B(m_cap) * tanh(x * B(m_inv_cap));
                    }
                    else
                    {
                        return x;
                    }
                }

                /// capped() of one value, through the batch function, so that the row's max stays its
                /// largest capped logit bit for bit.
                template <bool Capped>
                V capped_value(V x) const noexcept
                {
                    alignas(64) V lanes[batch_traits<B>::size];
                    batch_traits<B>::store(lanes, capped<Capped>(B(x)));
                    return lanes[0];
                }

                /// Lanes [0, count) of a batch kept, the others v.
                static XLOSS_INLINE B first_lanes(const B& x, std::size_t count, V v) noexcept
                {
                    if (count == batch_traits<B>::size)
                    {
                        return x;
                    }
                    alignas(64) V lanes[batch_traits<B>::size];
                    batch_traits<B>::store(lanes, x);
                    std::fill(lanes + count, lanes + batch_traits<B>::size, v);
                    return batch_traits<B>::load(lanes);
                }

                /// One row: its loss (0 when ignored), its gradient row and its `none` loss.
                double row(std::size_t k, const row_outputs<S>& out, V* scratch, row_fault& fault) const
                {
                    const std::size_t n = m_src.rows.length;
                    V* grad = out.grad_student ? m_src.rows.write(out.grad_student, k, scratch ? scratch + n : nullptr)
                                               : nullptr;
                    double value = 0.;
                    if (kept(k) && n > 0)
                    {
                        const V* x = m_src.rows.read(m_src.logits, k, scratch);
                        value =
                            m_src.targets
                                ? soft_row(x, m_src.rows.read(m_src.targets, k, scratch ? scratch + 2 * n : nullptr), k,
                                           out, grad, fault)
                                : kept_row(x, k, out, grad, fault);
                    }
                    else if (grad)
                    {
                        std::fill(grad, grad + n, V(0));
                    }
                    if (out.loss)
                    {
                        out.loss[k] = stored_as<S>(value);
                    }
                    if (grad)
                    {
                        m_src.rows.scatter(out.grad_student, k, grad);
                    }
                    return value;
                }

                /// The sums pass's totals: Z, and sum_j w_j (m' - x'_j) for the smoothing.
                struct row_sums
                {
                    double z;
                    double spread;
                };

                double kept_row(const V* x, std::size_t k, const row_outputs<S>& out, V* grad, row_fault& f) const
                {
                    const V raw_max = row_max<B>(x, m_src.rows.length);
                    f = fault(x, raw_max);
                    if (f != row_fault::none)
                    {
                        return 0.; // the run throws after this group of rows
                    }
                    // One loop per set of options: no option's branch inside a loop.
                    const bool smoothing = m_terms.smoothing > 0., capped = m_cap != V(0);
                    return smoothing ? (capped ? kept_row<true, true>(x, raw_max, k, out, grad)
                                               : kept_row<true, false>(x, raw_max, k, out, grad))
                                     : (capped ? kept_row<false, true>(x, raw_max, k, out, grad)
                                               : kept_row<false, false>(x, raw_max, k, out, grad));
                }

                template <bool Smoothing, bool Capped>
                double kept_row(const V* x, V raw_max, std::size_t k, const row_outputs<S>& out, V* grad) const
                {
                    const std::size_t n = m_src.rows.length;
                    const V m = capped_value<Capped>(raw_max);
                    const row_sums sums = sums_pass<Smoothing, Capped>(x, m, grad);
                    const auto y = static_cast<std::size_t>(m_src.labels[k]);
                    const double log_z = std::log(sums.z), lse = static_cast<double>(m) + log_z;
                    const double w_y = m_terms.weight ? static_cast<double>(m_terms.weight[y]) : 1.;
                    const double eps = m_terms.smoothing;
                    const double nll =
                        (static_cast<double>(m) - static_cast<double>(capped_value<Capped>(x[y]))) + log_z;
                    double value = (1. - eps) * w_y * nll + m_terms.z_loss * lse * lse;
                    if (Smoothing)
                    {
                        value += eps / static_cast<double>(n) * (sums.spread + m_terms.weight_total * log_z);
                    }
                    if (grad)
                    {
                        const double g = out.grad_output ? static_cast<double>(out.grad_output[k]) : out.grad_scalar;
                        const double a = (1. - eps) * w_y + eps / static_cast<double>(n) * m_terms.weight_total
                                         + 2. * m_terms.z_loss * lse;
                        gradient_pass<Smoothing, Capped>(x, 1. / sums.z, a, (1. - eps) * w_y, y, g, grad);
                    }
                    return value;
                }

                /**
                 * Batch i of a sums pass: returns b = x' - m' (at most 0: a capped logit stays at most its
                 * row's max whatever tanh's rounding; NaN kept, as x86's min returns its second operand
                 * for it) and sets e = e^b (0 past the row's end), kept in `keep` when given.
                 */
                template <bool Capped>
                XLOSS_INLINE B shifted_exp(const V* x, std::size_t i, std::size_t count, V m, V* keep,
                                           B& e) const noexcept
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    const B v = capped<Capped>(load_row<B>(x, i, m_src.rows.length, lowest)) - B(m);
                    const B b = select(is_nan(v), v, min(v, B(0)));
                    e = first_lanes(exp_nonpositive(b), count, V(0));
                    if (keep)
                    {
                        store_lanes(keep + i, e, count);
                    }
                    return b;
                }

                /// Z and, with smoothing, sum_j w_j (m' - x'_j); keeps e^(x' - m') in `keep` when given.
                template <bool Smoothing, bool Capped>
                row_sums sums_pass(const V* x, V m, V* keep) const
                {
                    const std::size_t n = m_src.rows.length;
                    const V* const w = m_terms.weight;
                    row_sum<B> z, spread;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          B e;
                                          const B b = shifted_exp<Capped>(x, i, count, m, keep, e);
                                          z.add(e);
                                          if constexpr (Smoothing)
                                          {
                                              const B d = w ? load_row<B>(w, i, n, V(0)) * -b : -b;
                                              spread.add(first_lanes(d, count, V(0)));
                                          }
                                      });
                    return {z.total(), Smoothing ? spread.total() : 0.};
                }

                /// grad_j = g (a q_j - (eps / C) w_j - hot [j = y]) (times the cap's derivative).
                template <bool Smoothing, bool Capped>
                void gradient_pass(const V* x, double inv_z, double a, double hot, std::size_t y, double g,
                                   V* grad) const
                {
                    const std::size_t n = m_src.rows.length;
                    constexpr std::size_t lanes = batch_traits<B>::size;
                    const V* const w = m_terms.weight;
                    const B scale(static_cast<V>(g)), coef(static_cast<V>(a)), inv(static_cast<V>(inv_z));
                    const B share(m_share);
                    // The label's batch subtracts `hot` in the label's lane.
                    const std::size_t label_batch = y - y % lanes;
                    alignas(64) V hot_lanes[lanes] = {};
                    hot_lanes[y % lanes] = static_cast<V>(hot);
                    const B hot_batch = batch_traits<B>::load(hot_lanes);
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          B d = coef * (load_row<B>(grad, i, n, V(0)) * inv);
                                          if constexpr (Smoothing)
                                          {
                                              d -= w ? share * load_row<B>(w, i, n, V(0)) : share;
                                          }
                                          if (i == label_batch)
                                          {
                                              d -= hot_batch;
                                          }
                                          store_lanes(grad + i, capped_slope<Capped>(d, x, i) * scale, count);
                                      });
                }

                /// d times the cap's derivative at batch i of x, 1 - tanh(x / c)^2 (Capped), or d.
                template <bool Capped>
                XLOSS_INLINE B capped_slope(const B& d, const V* x, std::size_t i) const noexcept
                {
                    if constexpr (Capped)
                    {
                        const B th = tanh(load_row<B>(x, i, m_src.rows.length, V(0)) * B(m_inv_cap));
                        return d * (B(1) - th * th);
                    }
                    else
                    {
                        return d;
                    }
                }

                /**
                 * A row with probability targets t (PyTorch's soft labels), t' = (1 - eps) t + eps / C:
                 * sum_j w_j t'_j (lse - x'_j) + z lse^2; a class whose target is 0 adds nothing, also at a
                 * logit of -inf (PyTorch's 0 * -inf is NaN there). Gradient:
                 * g ((sum_j w_j t'_j + 2 z lse) q_j - w_j t'_j) (times the cap's derivative).
                 */
                double soft_row(const V* x, const V* t, std::size_t k, const row_outputs<S>& out, V* grad,
                                row_fault& f) const
                {
                    const V raw_max = row_max<B>(x, m_src.rows.length);
                    f = fault(x, raw_max);
                    if (f != row_fault::none)
                    {
                        return 0.; // the run throws after this group of rows
                    }
                    return m_cap != V(0) ? soft_row<true>(x, t, raw_max, k, out, grad)
                                         : soft_row<false>(x, t, raw_max, k, out, grad);
                }

                template <bool Capped>
                double soft_row(const V* x, const V* t, V raw_max, std::size_t k, const row_outputs<S>& out,
                                V* grad) const
                {
                    const V m = capped_value<Capped>(raw_max);
                    const soft_sums sums = soft_sums_pass<Capped>(x, t, m, grad);
                    const double log_z = std::log(sums.z), lse = static_cast<double>(m) + log_z;
                    const double value = sums.mass * log_z - sums.shifted + m_terms.z_loss * lse * lse;
                    if (grad)
                    {
                        const double g = out.grad_output ? static_cast<double>(out.grad_output[k]) : out.grad_scalar;
                        soft_gradient_pass<Capped>(x, t, 1. / sums.z, sums.mass + 2. * m_terms.z_loss * lse, g, grad);
                    }
                    return value;
                }

                /// A soft row's sums: Z, sum_j w_j t'_j (the mass) and sum_j w_j t'_j (x'_j - m').
                struct soft_sums
                {
                    double z;
                    double mass;
                    double shifted;
                };

                /// The targets t'_j w_j of batch i (padded with 0).
                XLOSS_INLINE B weighted_target(const V* t, std::size_t i) const noexcept
                {
                    const std::size_t n = m_src.rows.length;
                    const B tt = load_row<B>(t, i, n, V(0)) * B(static_cast<V>(1. - m_terms.smoothing)) + B(m_share);
                    return first_lanes_of(m_terms.weight ? tt * load_row<B>(m_terms.weight, i, n, V(0)) : tt, i, n);
                }

                /// v with the lanes past the row's end 0.
                static XLOSS_INLINE B first_lanes_of(const B& v, std::size_t i, std::size_t n) noexcept
                {
                    return first_lanes(v, std::min(n - i, batch_traits<B>::size), V(0));
                }

                template <bool Capped>
                soft_sums soft_sums_pass(const V* x, const V* t, V m, V* keep) const
                {
                    const std::size_t n = m_src.rows.length;
                    row_sum<B> z, mass, shifted;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          B e;
                                          const B b = shifted_exp<Capped>(x, i, count, m, keep, e);
                                          z.add(e);
                                          const B wt = weighted_target(t, i);
                                          mass.add(wt);
                                          // A class without target mass adds 0, whatever its logit.
                                          shifted.add(select(is_zero(wt), B(0), wt * b));
                                      });
                    return {z.total(), mass.total(), shifted.total()};
                }

                template <bool Capped>
                void soft_gradient_pass(const V* x, const V* t, double inv_z, double a, double g, V* grad) const
                {
                    const std::size_t n = m_src.rows.length;
                    const B scale(static_cast<V>(g)), coef(static_cast<V>(a)), inv(static_cast<V>(inv_z));
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B d =
                                              coef * (load_row<B>(grad, i, n, V(0)) * inv) - weighted_target(t, i);
                                          store_lanes(grad + i, capped_slope<Capped>(d, x, i) * scale, count);
                                      });
                }

                cross_entropy_source<S, L> m_src;
                cross_entropy_terms<V> m_terms;
                keep_labels<L> m_keep;
                V m_inv_cap;
                V m_cap;
                V m_share; ///< eps / C
            };
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
