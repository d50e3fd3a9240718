/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_DISTILL_KERNELS_HPP
#define XLOSS_DETAIL_KL_DIV_DISTILL_KERNELS_HPP

// Row kernels of the distillation loss T^2 KL(softmax(t/T) || softmax(s/T)):
// with a = (t - max t) / T and b = (s - max s) / T, p = exp(a) / Za and
// q = exp(b) / Zb, the row's KL is sum(p (a - b)) - log Za + log Zb. A row is
// read twice for the loss (max, then the sums) and once more to write terms or
// gradients; no softmax is ever stored. A teacher class whose probability is 0
// (a -inf logit, or one that underflows) contributes exactly 0.

#include <cmath>
#include <cstddef>
#include <limits>

#include "../kernels/batch_loops.hpp"
#include "../kernels/simd.hpp"
#include "../kernels/softmax.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// What one row's loss and gradients need.
            template <class T>
            struct distill_row
            {
                T max_t;   ///< the teacher's largest logit
                T max_s;   ///< the student's largest logit
                T log_za;  ///< log of the teacher's partition sum (after the max is taken off)
                T log_zb;  ///< the same for the student
                double kl; ///< the row's KL divergence (without T^2)
            };

            /// The scaled, shifted logits a and b of one batch, and their exponentials.
            template <class B>
            struct distill_batch
            {
                B a, b, ea, eb;

                distill_batch(const value_type_t<B>* s, const value_type_t<B>* t, std::size_t i, std::size_t n,
                              const distill_row<value_type_t<B>>& r, value_type_t<B> inv_temp) noexcept
                {
                    constexpr auto lowest = -std::numeric_limits<value_type_t<B>>::infinity();
                    a = (load_row<B>(t, i, n, lowest) - B(r.max_t)) * B(inv_temp);
                    b = (load_row<B>(s, i, n, lowest) - B(r.max_s)) * B(inv_temp);
                    ea = softmax_exp(a);
                    eb = softmax_exp(b);
                }

                /// log p - log q, where p > 0.
                B log_ratio(const distill_row<value_type_t<B>>& r) const noexcept
                {
                    return (a - B(r.log_za)) - (b - B(r.log_zb));
                }
            };

            /**
             * The row's maxima, partition sums and KL. The maxima must be taken first (the caller
             * checks them); `with_kl` skips the KL's sum when only the student gradient is wanted.
             */
            template <class B>
            inline void distill_sums(const value_type_t<B>* s, const value_type_t<B>* t, std::size_t n,
                                     value_type_t<B> inv_temp, bool with_kl, distill_row<value_type_t<B>>& r) noexcept
            {
                using T = value_type_t<B>;
                row_sum<B> za, zb, cross;
                r.log_za = r.log_zb = T(0);
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t)
                                  {
                                      const distill_batch<B> d(s, t, i, n, r, inv_temp);
                                      za.add(d.ea);
                                      zb.add(d.eb);
                                      if (with_kl)
                                      {
                                          cross.add(select(is_zero(d.ea), B(0), d.ea * (d.a - d.b)));
                                      }
                                  });
                const double sa = za.total();
                const double sb = zb.total();
                r.log_za = static_cast<T>(std::log(sa));
                r.log_zb = static_cast<T>(std::log(sb));
                r.kl = with_kl ? cross.total() / sa - std::log(sa) + std::log(sb) : 0.;
            }

            /**
             * Sums over a row with a per-element grad_output g: sum(g p) and sum(g p (log p - log q + 1)),
             * what the gradients of the `none` loss need.
             */
            template <class B>
            inline void distill_grad_sums(const value_type_t<B>* s, const value_type_t<B>* t, const value_type_t<B>* g,
                                          std::size_t n, value_type_t<B> inv_temp,
                                          const distill_row<value_type_t<B>>& r, double& gp, double& gpl) noexcept
            {
                const B inv_za(std::exp(-r.log_za));
                row_sum<B> sum_gp, sum_gpl;
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t)
                                  {
                                      const distill_batch<B> d(s, t, i, n, r, inv_temp);
                                      const B gpb = load_row<B>(g, i, n, 0) * d.ea * inv_za;
                                      sum_gp.add(gpb);
                                      sum_gpl.add(select(is_zero(d.ea), B(0), gpb * (d.log_ratio(r) + B(1))));
                                  });
                gp = sum_gp.total();
                gpl = sum_gpl.total();
            }

            /// Where a row's write pass puts its results; a null pointer skips that output.
            template <class T>
            struct distill_outputs
            {
                T* term = nullptr;    ///< term_scale * p (log p - log q): the `none` loss
                T* student = nullptr; ///< grad_scale * (q gp - g p): the student's gradient
                T* teacher = nullptr; ///< grad_scale * p (g (l + 1) - gpl): the teacher's gradient
                T term_scale = 0;     ///< T^2
                T grad_scale = 0;     ///< T / divisor
                T gp = 0;             ///< sum(g p) over the row (g itself for a uniform g)
                T gpl = 0;            ///< sum(g p (l + 1)) over the row (g (KL + 1) for a uniform g)
            };

            /**
             * The write pass of a row: the terms and the gradients (l = log p - log q; g is the
             * grad_output, a scalar_arg or a pointer), each from the same loads and exponentials.
             */
            template <class B, class G>
            inline void distill_write(const value_type_t<B>* s, const value_type_t<B>* t, G g, std::size_t n,
                                      value_type_t<B> inv_temp, const distill_row<value_type_t<B>>& r,
                                      const distill_outputs<value_type_t<B>>& o) noexcept
            {
                const B inv_za(std::exp(-r.log_za));
                const B inv_zb(std::exp(-r.log_zb));
                for_each_batch<B>(
                    n,
                    [&](std::size_t i, std::size_t count)
                    {
                        const distill_batch<B> d(s, t, i, n, r, inv_temp);
                        const B p = d.ea * inv_za;
                        const auto masked = is_zero(d.ea);
                        const B gb = count == batch_traits<B>::size ? load_arg<B>(g, i)
                                                                    : load_tail<B>(g, i, n, value_type_t<B>(0));
                        if (o.term)
                        {
                            store_lanes(o.term + i, select(masked, B(0), p * d.log_ratio(r)) * B(o.term_scale), count);
                        }
                        if (o.student)
                        {
                            store_lanes(o.student + i, (d.eb * inv_zb * B(o.gp) - gb * p) * B(o.grad_scale), count);
                        }
                        if (o.teacher)
                        {
                            const B v = select(masked, B(0), p * (gb * (d.log_ratio(r) + B(1)) - B(o.gpl)));
                            store_lanes(o.teacher + i, v * B(o.grad_scale), count);
                        }
                    });
            }
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
