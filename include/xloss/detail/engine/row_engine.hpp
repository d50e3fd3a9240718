/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_ENGINE_HPP
#define XLOSS_DETAIL_ENGINE_ROW_ENGINE_HPP

// The row engine of the divergences computed from logits along an axis. For each kept row it
// takes the student's and the teacher's softmax statistics (max, log partition sum), then one
// pass computes the policy's terms and the row sums the gradients need, and, when gradients are
// wanted, a last pass writes them. Nothing of the size of the logits is allocated: a gradient row
// holds the policy's pulls between the two passes. Rows go to OpenMP threads in fixed groups and
// the reduced loss is the in-order sum of the rows' values: the same for any thread count.

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/rows.hpp"
#include "../kernels/batch_loops.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/simd.hpp"
#include "../kernels/softmax.hpp"
#include "row_policy.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Where the engine writes; a null pointer skips that output.
            template <class V>
            struct row_outputs
            {
                V* loss_rows = nullptr;       ///< one value per row (reduction `none`)
                V* grad_student = nullptr;    ///< the student's gradient, in the logits' layout
                V* grad_teacher = nullptr;    ///< the teacher's gradient, in the logits' layout
                const V* grad_rows = nullptr; ///< a grad_output per row, already divided by the divisor
                double grad_scalar = 0.;      ///< the grad_output for every row when grad_rows is null

                bool gradients() const noexcept
                {
                    return grad_student || grad_teacher;
                }
            };

            /// Every row counts.
            struct keep_all
            {
                bool operator()(std::size_t) const noexcept
                {
                    return true;
                }
            };

            /// Rows whose label is not `ignore_index` count (a bool mask: rows marked true).
            template <class L>
            struct keep_labels
            {
                const L* labels;
                long long ignore_index;

                bool operator()(std::size_t k) const noexcept
                {
                    if constexpr (std::is_same<L, bool>::value)
                    {
                        return labels[k];
                    }
                    else
                    {
                        return static_cast<long long>(labels[k]) != ignore_index;
                    }
                }
            };

            template <class B, class Policy, class Keep>
            class row_engine
            {
            public:

                using V = value_type_t<B>;

                row_engine(const Policy& policy, const V* student, const V* teacher, const row_layout& rows,
                           const shape_type& row_shape, Keep keep, double temperature, const char* func)
                    : m_policy(policy)
                    , m_student(student)
                    , m_teacher(teacher)
                    , m_rows(rows)
                    , m_row_shape(row_shape)
                    , m_keep(keep)
                    , m_temperature(temperature)
                    , m_inv_temp(static_cast<V>(1. / temperature))
                    , m_func(func)
                {
                }

                /// Throws for a kept row of -inf logits (its softmax is undefined) or with a +inf
                /// logit; before anything is written.
                void check_rows() const
                {
                    std::vector<V> buf(m_rows.inner == 1 ? 0 : m_rows.length);
                    for (std::size_t k = 0; k < m_rows.rows && m_rows.length > 0; ++k)
                    {
                        if (m_keep(k))
                        {
                            check_row(m_rows.read(m_student, k, buf.data()), k, "student_logits");
                            check_row(m_rows.read(m_teacher, k, buf.data()), k, "teacher_logits");
                        }
                    }
                }

                /// Runs every row; returns the sum of the kept rows' values (T^2 D), in row order.
                double run(const row_outputs<V>& out, int threads) const
                {
                    constexpr std::size_t group = 256;
                    const std::size_t n = m_rows.rows;
                    const std::size_t scratch = m_rows.inner == 1 ? 0 : 4 * m_rows.length;
                    int team = 1;
#ifdef _OPENMP
                    team = threads > 1 ? threads : 1;
#else
                    (void)threads;
#endif
                    std::vector<V> buf(scratch * static_cast<std::size_t>(team));
                    double partial[group];
                    double total = 0.;
                    for (std::size_t first = 0; first < n; first += group)
                    {
                        const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(std::min(group, n - first));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
#endif
                        for (std::ptrdiff_t j = 0; j < count; ++j)
                        {
                            std::size_t thread = 0;
#ifdef _OPENMP
                            thread = static_cast<std::size_t>(omp_get_thread_num());
#endif
                            partial[j] = row(first + static_cast<std::size_t>(j), out,
                                             scratch ? buf.data() + thread * scratch : nullptr);
                        }
                        for (std::ptrdiff_t j = 0; j < count; ++j)
                        {
                            total += partial[j];
                        }
                    }
                    return total;
                }

            private:

                void check_row(const V* p, std::size_t k, const char* name) const
                {
                    const V m = row_max<B>(p, m_rows.length);
                    if (is_inf(m) && !is_neg_inf(m))
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": " + name + " row "
                                                            + row_index(k, m_row_shape)
                                                            + " holds +inf: its softmax is undefined"));
                    }
                    if (is_neg_inf(m))
                    {
                        for (std::size_t j = 0; j < m_rows.length; ++j)
                        {
                            if (is_nan(p[j]))
                            {
                                return; // NaN reaches the loss
                            }
                        }
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": " + name + " row "
                                                            + row_index(k, m_row_shape)
                                                            + " is all -inf: its softmax is undefined"));
                    }
                }

                /// One row: its value T^2 D (0 when ignored), and its outputs.
                double row(std::size_t k, const row_outputs<V>& out, V* scratch) const
                {
                    const std::size_t n = m_rows.length;
                    // Scratch (four rows) exists only for rows along an inner axis; no offset from null.
                    auto part = [&](std::size_t i)
                    {
                        return scratch ? scratch + i * n : nullptr;
                    };
                    V* const sbuf = part(0);
                    V* const tbuf = part(1);
                    V* const gs = out.grad_student ? m_rows.write(out.grad_student, k, part(2)) : nullptr;
                    V* const gt = out.grad_teacher ? m_rows.write(out.grad_teacher, k, part(3)) : nullptr;
                    double value = 0.;
                    if (!m_keep(k) || n == 0)
                    {
                        fill_row(gs, V(0));
                        fill_row(gt, V(0));
                    }
                    else
                    {
                        value =
                            kept_row(m_rows.read(m_student, k, sbuf), m_rows.read(m_teacher, k, tbuf), k, out, gs, gt);
                    }
                    if (out.loss_rows)
                    {
                        out.loss_rows[k] = static_cast<V>(value);
                    }
                    if (gs)
                    {
                        m_rows.scatter(out.grad_student, k, gs);
                    }
                    if (gt)
                    {
                        m_rows.scatter(out.grad_teacher, k, gt);
                    }
                    return value;
                }

                void fill_row(V* p, V v) const noexcept
                {
                    for (std::size_t j = 0; p && j < m_rows.length; ++j)
                    {
                        p[j] = v;
                    }
                }

                /// The shifted, scaled logits of batch i: (x - max) / T, padded with -inf.
                B scaled(const V* p, std::size_t i, V m) const noexcept
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    return (load_row<B>(p, i, m_rows.length, lowest) - B(m)) * B(m_inv_temp);
                }

                double kept_row(const V* s, const V* t, std::size_t k, const row_outputs<V>& out, V* gs, V* gt) const
                {
                    const std::size_t n = m_rows.length;
                    const V ms = row_max<B>(s, n), mt = row_max<B>(t, n);
                    row_sum<B> zs, zt;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t)
                                      {
                                          zs.add(softmax_exp(scaled(s, i, ms)));
                                          zt.add(softmax_exp(scaled(t, i, mt)));
                                      });
                    const V log_zs = static_cast<V>(std::log(zs.total()));
                    const V log_zt = static_cast<V>(std::log(zt.total()));
                    row_sum<B> terms, pull_s, pull_t;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count)
                                      {
                                          const B lq = scaled(s, i, ms) - B(log_zs);
                                          const B lp = scaled(t, i, mt) - B(log_zt);
                                          const divergence_terms<B> d =
                                              m_policy(lp, lq, softmax_exp(lp), softmax_exp(lq));
                                          terms.add(d.term);
                                          pull_s.add(d.pull_student);
                                          pull_t.add(d.pull_teacher);
                                          if (gs)
                                          {
                                              store_lanes(gs + i, d.pull_student, count);
                                          }
                                          if (gt)
                                          {
                                              store_lanes(gt + i, d.pull_teacher, count);
                                          }
                                      });
                    const double t2 = m_temperature * m_temperature;
                    const double value = t2 * terms.total();
                    if (!out.gradients())
                    {
                        return value;
                    }
                    // d(T^2 D)/dx = T (pull - prob * sum(pull)), times the row's grad_output.
                    const double g = out.grad_rows ? static_cast<double>(out.grad_rows[k]) : out.grad_scalar;
                    const B scale(static_cast<V>(m_temperature * g));
                    const B sum_s(static_cast<V>(pull_s.total())), sum_t(static_cast<V>(pull_t.total()));
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count)
                                      {
                                          if (gs)
                                          {
                                              const B q = softmax_exp(scaled(s, i, ms) - B(log_zs));
                                              const B pull = load_row<B>(gs, i, n, V(0));
                                              store_lanes(gs + i, (pull - q * sum_s) * scale, count);
                                          }
                                          if (gt)
                                          {
                                              const B p = softmax_exp(scaled(t, i, mt) - B(log_zt));
                                              const B pull = load_row<B>(gt, i, n, V(0));
                                              store_lanes(gt + i, (pull - p * sum_t) * scale, count);
                                          }
                                      });
                    return value;
                }

                const Policy& m_policy;
                const V* m_student;
                const V* m_teacher;
                const row_layout& m_rows;
                const shape_type& m_row_shape;
                Keep m_keep;
                double m_temperature;
                V m_inv_temp;
                const char* m_func;
            };
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
