/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_DIVERGENCE_TOP_K_ROWS_HPP
#define XLOSS_DETAIL_DIVERGENCE_TOP_K_ROWS_HPP

// The forward KL of a student's full softmax Q = softmax(s / T) over V classes from a teacher given
// as its k classes K and their log-probabilities l (top-k distillation), row by row, no dense
// teacher row ever built. P over K is softmax(l / T) (top_k_tail::renormalize), or p = e^l with the
// mass r = 1 - sum_K p outside K as one more class, against the student's q_out = 1 - sum_K q
// (top_k_tail::bucket, T = 1):
//   D = sum_K p (log p - log q)  [+ r (log r - log q_out)]
//   dD/ds_i = (1/T) (c q_i - [i in K] (p_i - b q_i)),  c = sum_K p - b sum_K q,  b = r / q_out (bucket; else 0)
// Three reads of the student's row with a gradient (max; partition sum, its exponentials kept in the
// gradient row; the dense write c q), then k scattered updates. The hard cross-entropy mixes in as in
// the row engine (hard_row).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include "../core/error.hpp"
#include "../core/labels.hpp"
#include "../core/rows.hpp"
#include "../core/vocabulary.hpp"
#include "../engine/row_engine.hpp"
#include "../engine/row_groups.hpp"
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
            /// The rows a top-k run reads: the student's logits (rows x n), the teacher's ids and
            /// log-probabilities (rows x k).
            template <class V, class I>
            struct top_k_source
            {
                const V* student;
                const I* ids;
                const V* log_probs;
                std::size_t rows;
                std::size_t n;
                std::size_t k;
                const shape_type& row_shape;
                const std::size_t* row_ids = nullptr; ///< the caller's row of each row (messages name it), or null
            };

            /// How a top-k run treats its rows.
            struct top_k_settings
            {
                double temperature;
                xloss::temperature_scale scale;
                xloss::top_k_tail tail;
                double weight_soft;
                double weight_hard;
                const char* func;
            };

            template <class B, class I, class Keep>
            class top_k_rows
            {
            public:

                using V = value_type_t<B>;

                top_k_rows(const top_k_source<V, I>& source, Keep keep, const top_k_settings& settings)
                    : m_src(source)
                    , m_keep(keep)
                    , m_set(settings)
                    , m_inv_temp(static_cast<V>(1. / settings.temperature))
                    , m_loss_factor(settings.scale == xloss::temperature_scale::squared
                                        ? settings.temperature * settings.temperature
                                        : 1.)
                    , m_grad_factor(settings.scale == xloss::temperature_scale::squared ? settings.temperature
                                                                                        : 1. / settings.temperature)
                {
                }

                /// Whether check_rows also reads the students' rows (before writing into a caller's outputs).
                enum class student_rows
                {
                    check,
                    while_running
                };

                /// Throws for a kept row whose ids repeat or leave [0, n), or whose teacher's log-probabilities
                /// are all -inf or hold +inf (and, with student_rows::check, whose student row has no softmax).
                void check_rows(std::vector<unsigned char>& seen, student_rows students) const
                {
                    seen.assign(m_src.n, 0);
                    for (std::size_t r = 0; r < m_src.rows; ++r)
                    {
                        if (!m_keep(r))
                        {
                            continue;
                        }
                        const I* ids = m_src.ids + r * m_src.k;
                        for (std::size_t j = 0; j < m_src.k; ++j)
                        {
                            if (is_negative_label(ids[j]) || static_cast<unsigned long long>(ids[j]) >= m_src.n)
                            {
                                raise_row(r, "teacher id " + std::to_string(static_cast<long long>(ids[j]))
                                                 + " is not a class of " + std::to_string(m_src.n));
                            }
                            if (seen[static_cast<std::size_t>(ids[j])]++)
                            {
                                raise_row(r, "teacher id " + std::to_string(static_cast<long long>(ids[j]))
                                                 + " appears twice");
                            }
                        }
                        for (std::size_t j = 0; j < m_src.k; ++j)
                        {
                            seen[static_cast<std::size_t>(ids[j])] = 0;
                        }
                        // The students' rows only when asked (a fused linear call checks before it has them).
                        const row_fault f = students == student_rows::check
                                                ? fault(r, row_max<B>(m_src.student + r * m_src.n, m_src.n))
                                                : teacher_fault(r);
                        if (f != row_fault::none)
                        {
                            raise_fault(f, r);
                        }
                    }
                }

                double run(row_range range, const row_outputs<V>& out, int threads, row_workspace<V>& workspace) const
                {
                    return run_row_groups(
                        range, row_team{team_size(threads), 0}, workspace,
                        [&](std::size_t r, V*, row_fault& f)
                        {
                            return row(r, out, f);
                        },
                        [&](row_fault f, std::size_t r)
                        {
                            raise_fault(f, r);
                        });
                }

            private:

                std::size_t caller_row(std::size_t r) const noexcept
                {
                    return m_src.row_ids ? m_src.row_ids[r] : r;
                }

                [[noreturn]] void raise_row(std::size_t r, const std::string& what) const
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + m_set.func + ": row "
                                                        + row_index(caller_row(r), m_src.row_shape) + ": " + what));
                }

                [[noreturn]] void raise_fault(row_fault f, std::size_t r) const
                {
                    const bool teacher = (static_cast<int>(f) & teacher_bit) != 0;
                    const auto what = static_cast<row_fault>(static_cast<int>(f) & ~teacher_bit);
                    detail::raise(std::invalid_argument(std::string("xloss::") + m_set.func + ": "
                                                        + (teacher ? "teacher_log_probs" : "student_logits") + " row "
                                                        + row_index(caller_row(r), m_src.row_shape)
                                                        + (what == row_fault::pos_inf ? " holds +inf" : " is all -inf")
                                                        + ": its softmax is undefined"));
                }

                /// A +inf, or -inf everywhere without NaN, in n values whose max is m.
                static row_fault fault_of(const V* p, std::size_t n, V m) noexcept
                {
                    if (is_inf(m) && !is_neg_inf(m))
                    {
                        return row_fault::pos_inf;
                    }
                    if (!is_neg_inf(m))
                    {
                        return row_fault::none;
                    }
                    // A max of -inf: the row is all -inf, unless it holds NaN (then NaN reaches its loss).
                    const bool nan = std::any_of(p, p + n,
                                                 [](V v)
                                                 {
                                                     return is_nan(v);
                                                 });
                    return nan ? row_fault::none : row_fault::all_neg_inf;
                }

                /// The teacher's k values of row r: all -inf, or a +inf.
                row_fault teacher_fault(std::size_t r) const noexcept
                {
                    const V* l = m_src.log_probs + r * m_src.k;
                    const row_fault g = fault_of(l, m_src.k, row_max<B>(l, m_src.k));
                    return g == row_fault::none ? g : static_cast<row_fault>(static_cast<int>(g) | teacher_bit);
                }

                /// Row r's fault, its student's max `ms` known: the student's first.
                row_fault fault(std::size_t r, V ms) const noexcept
                {
                    const row_fault f = fault_of(m_src.student + r * m_src.n, m_src.n, ms);
                    return f != row_fault::none ? f : teacher_fault(r);
                }

                double row(std::size_t r, const row_outputs<V>& out, row_fault& f) const
                {
                    const std::size_t n = m_src.n;
                    V* grad = out.grad_student ? out.grad_student + r * n : nullptr;
                    double value = 0., soft = 0., hard = 0.;
                    if (m_keep(r) && n > 0)
                    {
                        // The teacher's values were checked before the run (check_rows).
                        const V ms = row_max<B>(m_src.student + r * n, n);
                        f = fault_of(m_src.student + r * n, n, ms);
                        if (f != row_fault::none)
                        {
                            return 0.;
                        }
                        const double g = out.grad_output ? static_cast<double>(out.grad_output[r]) : out.grad_scalar;
                        soft = kept_row(r, ms, g, grad, hard);
                        value = weighted_sum(m_set.weight_soft, soft, m_set.weight_hard, hard);
                    }
                    else if (grad)
                    {
                        std::fill(grad, grad + n, V(0));
                    }
                    if (out.loss)
                    {
                        out.loss[r] = static_cast<V>(value);
                    }
                    if (out.parts)
                    {
                        out.parts[2 * r] = soft;
                        out.parts[2 * r + 1] = hard;
                    }
                    return value;
                }

                /// Over K: the divergence's terms, sum_K p and sum_K q.
                struct support_sums
                {
                    double divergence;
                    double teacher;
                    double student;
                };

                /**
                 * The k terms of a row in batches: log p from the teacher's values `l` (softmax(l / T) over
                 * K, or l itself with a bucket), log q = (s - max) / T - log Zs from the student's logits at
                 * K (in `q` on entry); p and q are left in `p` and `q` for the gradient.
                 */
                support_sums support_terms(const V* l, V ms, double log_zs, V* p, V* q) const noexcept
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    const std::size_t k = m_src.k;
                    const bool bucket = m_set.tail == xloss::top_k_tail::bucket;
                    const B inv_t(m_inv_temp), student_shift(ms), student_log_z(static_cast<V>(log_zs));
                    const V mt = row_max<B>(l, k);
                    row_sum<B> zt, divergence, teacher, student;
                    if (!bucket)
                    {
                        for_each_batch<B>(k,
                                          [&](std::size_t i, std::size_t) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                          {
                                              zt.add(exp_nonpositive((load_row<B>(l, i, k, lowest) - B(mt)) * inv_t));
                                          });
                    }
                    const B teacher_log_z(static_cast<V>(bucket ? 0. : std::log(zt.total())));
                    for_each_batch<B>(k,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B raw = load_row<B>(l, i, k, lowest);
                                          // A stored log-probability above 0 (rounding) counts as 0; NaN stays.
                                          const B lp = bucket ? select(is_nan(raw), raw, min(raw, B(0)))
                                                              : mul_sub(raw - B(mt), inv_t, teacher_log_z);
                                          const B lq = mul_sub(load_row<B>(q, i, k, lowest) - student_shift, inv_t,
                                                               student_log_z);
                                          const B pb = exp_nonpositive(lp), qb = exp_nonpositive(lq);
                                          divergence.add(select(is_zero(pb), B(0), pb * (lp - lq)));
                                          teacher.add(pb);
                                          student.add(qb);
                                          store_lanes(p + i, pb, count);
                                          store_lanes(q + i, qb, count);
                                      });
                    return {divergence.total(), teacher.total(), student.total()};
                }

                /// A kept row's T^2 D (or D), its gradient into `grad` for grad_output g, and its hard part
                /// into `hard`.
                double kept_row(std::size_t r, V ms, double g, V* grad, double& hard) const
                {
                    const std::size_t n = m_src.n, k = m_src.k;
                    const V* s = m_src.student + r * n;
                    const I* ids = m_src.ids + r * k;
                    const double zs = partition_sum(s, ms, m_inv_temp, grad);
                    // p and q over K: on the stack for k up to 256.
                    constexpr std::size_t stack = 256;
                    alignas(64) V stack_values[2 * stack];
                    std::vector<V> heap(k > stack ? 2 * k : 0);
                    V* const p = k > stack ? heap.data() : stack_values;
                    V* const q = p + (k > stack ? k : stack);
                    for (std::size_t j = 0; j < k; ++j)
                    {
                        q[j] = s[ids[j]]; // the student's logits at K, made q below
                    }
                    const support_sums sums = support_terms(m_src.log_probs + r * k, ms, std::log(zs), p, q);
                    double d = sums.divergence;
                    const double teacher_mass = sums.teacher, student_mass = sums.student;
                    double b = 0.;
                    if (m_set.tail == xloss::top_k_tail::bucket)
                    {
                        // A rest within rounding of the stored values is no mass (else k = V would give
                        // r log(r / q_out) of two rounding residues).
                        const double tolerance = 4. * static_cast<double>(k) * std::numeric_limits<V>::epsilon();
                        const double rest = 1. - teacher_mass, out = std::max(0., 1. - student_mass);
                        if (rest > tolerance)
                        {
                            d += rest * (std::log(rest) - std::log(out));
                            b = rest / out;
                        }
                    }
                    const bool shared = m_set.weight_hard > 0. && m_set.temperature == 1.;
                    if (grad)
                    {
                        soft_gradient(r, g, zs, teacher_mass - b * student_mass, b, p, q, shared, grad);
                    }
                    if (m_set.weight_hard > 0.)
                    {
                        const auto y = static_cast<std::size_t>(m_keep.label(r));
                        const double z1 = shared ? zs : partition_sum(s, ms, V(1), nullptr);
                        hard = std::log(z1) - (static_cast<double>(s[y]) - static_cast<double>(ms));
                        if (grad)
                        {
                            hard_gradient(s, y, m_set.weight_hard * g, ms, shared ? 0. : z1, grad);
                        }
                    }
                    return m_loss_factor * d;
                }

                /// sum e^((s - max) x), the exponentials kept in `keep` when given.
                double partition_sum(const V* s, V ms, V x, V* keep) const noexcept
                {
                    const std::size_t n = m_src.n;
                    row_sum<B> z;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B e = exp_nonpositive(
                                              (load_row<B>(s, i, n, -std::numeric_limits<V>::infinity()) - B(ms))
                                              * B(x));
                                          if (keep)
                                          {
                                              store_lanes(keep + i, e, count);
                                          }
                                          z.add(e);
                                      });
                    return z.total();
                }

                /**
                 * grad = f (c q - [K] (p - b q)), f = grad factor x weight_soft x g, plus weight_hard g q where
                 * the cross-entropy shares the softmax (T = 1); the exponentials e^((s - max) / T) are in
                 * `grad` from the sums pass, and the hard part's own passes have not run yet.
                 */
                void soft_gradient(std::size_t r, double g, double zs, double c, double b, const V* p, const V* q,
                                   bool shared, V* grad) const
                {
                    const std::size_t n = m_src.n, k = m_src.k;
                    const I* ids = m_src.ids + r * k;
                    const double f = m_grad_factor * m_set.weight_soft * g;
                    const B dense(static_cast<V>((f * c + (shared ? m_set.weight_hard * g : 0.)) / zs));
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          store_lanes(grad + i, load_row<B>(grad, i, n, V(0)) * dense, count);
                                      });
                    for (std::size_t j = 0; j < k; ++j)
                    {
                        const auto i = static_cast<std::size_t>(ids[j]);
                        grad[i] = static_cast<V>(static_cast<double>(grad[i])
                                                 - f * (static_cast<double>(p[j]) - b * static_cast<double>(q[j])));
                    }
                }

                /// The hard cross-entropy's gradient hs (q1 - [y]): its dense part here when its softmax is
                /// not the soft part's (z1 > 0: T != 1), added to the soft part's; -hs at the label.
                void hard_gradient(const V* s, std::size_t y, double hs, V ms, double z1, V* grad) const noexcept
                {
                    const std::size_t n = m_src.n;
                    if (z1 > 0.)
                    {
                        const B scale(static_cast<V>(hs / z1));
                        for_each_batch<B>(n,
                                          [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                          {
                                              const B e = exp_nonpositive(
                                                  load_row<B>(s, i, n, -std::numeric_limits<V>::infinity()) - B(ms));
                                              store_lanes(grad + i, load_row<B>(grad, i, n, V(0)) + e * scale, count);
                                          });
                    }
                    grad[y] = static_cast<V>(static_cast<double>(grad[y]) - hs);
                }

                top_k_source<V, I> m_src;
                Keep m_keep;
                top_k_settings m_set;
                V m_inv_temp;
                double m_loss_factor;
                double m_grad_factor;
            };
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
