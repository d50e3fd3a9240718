/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_DIVERGENCE_POLICIES_HPP
#define XLOSS_DETAIL_DIVERGENCE_POLICIES_HPP

// The row policies of the divergences between the teacher's distribution P and the student's Q
// along a row: a divergence D = sum_j f(p_j, q_j) is known to the row engine by three pointwise
// values per class, from log p, log q, p and q:
//   term  f(p, q)
//   pull_student  q df/dq   (the student's gradient is  q_k (df/dq_k) - q_k sum_j q_j df/dq_j)
//   pull_teacher  p df/dp   (the same for the teacher)
// written so that a class with p = 0 or q = 0 contributes its limit, never 0 * inf.

#include <cmath>

#include "../engine/row_policy.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/fast_math.hpp"
#include "../kernels/simd.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// KL(P || Q) = sum p (log p - log q): what kl_div_with_logits computes. A class the teacher
            /// masks (p = 0) contributes 0; one only the student masks makes the row +inf.
            struct forward_kl_policy
            {
                static constexpr const char* name = "forward_kl";
                static constexpr const char* out_name = "ForwardKLLoss::forward_backward_out";
                static constexpr bool nonnegative = true; ///< a row is never below 0

                template <class B>
                divergence_terms<B> operator()(const B& lp, const B& lq, const B& p, const B&) const noexcept
                {
                    const auto masked = is_zero(p);
                    const B l = lp - lq;
                    return {select(masked, B(0), p * l), -p, select(masked, B(0), p * (l + B(1)))};
                }

                /// Loss only: KL = sum(e^a (a - b)) / Zp - log Zp + log Zq.
                template <class B>
                shifted_sums<B, 1> shifted(const B& a, const B& b, const B& ea, const B&) const noexcept
                {
                    return {select(is_zero(ea), B(0), ea * (a - b))};
                }

                double row_value(const shifted_totals<1>& sums, double zq, double zp) const noexcept
                {
                    return sums[0] / zp - std::log(zp) + std::log(zq);
                }

                /// sum(-p) = -1; sum(p (l + 1)) = KL + 1.
                row_pull_sums pull_sums(const shifted_totals<1>&, double, double, double kl) const noexcept
                {
                    return {-1., kl + 1.};
                }
            };

            /**
             * KL(Q || P) = sum q (log q - log p), over the classes the teacher does not mask, as
             * torchtune's ReverseKLLoss: a class with a -inf teacher logit contributes 0. (A teacher
             * probability that merely underflows is not a mask: its log is finite, and q log(q / p)
             * may be large.)
             */
            struct reverse_kl_policy
            {
                static constexpr const char* name = "reverse_kl";
                static constexpr const char* out_name = "ReverseKLLoss::forward_backward_out";
                /// Not clamped at 0: over the classes the teacher keeps, the sum may be below 0.
                static constexpr bool nonnegative = false;

                template <class B>
                divergence_terms<B> operator()(const B& lp, const B& lq, const B&, const B& q) const noexcept
                {
                    const auto teacher_masked = is_neg_inf(lp);
                    const auto masked = either(teacher_masked, is_zero(q));
                    const B l = lq - lp;
                    return {select(masked, B(0), q * l), select(masked, B(0), q * (l + B(1))),
                            select(teacher_masked, B(0), -q)};
                }

                /// Loss only, over the classes the teacher keeps (K): with e = e^b,
                /// sum_K(e (b - a)) / Zq + (log Zp - log Zq) sum_K(e) / Zq.
                template <class B>
                shifted_sums<B, 2> shifted(const B& a, const B& b, const B&, const B& eb) const noexcept
                {
                    const auto masked = either(is_neg_inf(a), is_zero(eb));
                    return {select(masked, B(0), eb * (b - a)), select(masked, B(0), eb)};
                }

                double row_value(const shifted_totals<2>& sums, double zq, double zp) const noexcept
                {
                    return (sums[0] + (std::log(zp) - std::log(zq)) * sums[1]) / zq;
                }

                /// Over the kept classes K: sum(q (l + 1)) = KL + q(K); sum(-q) = -q(K).
                row_pull_sums pull_sums(const shifted_totals<2>& sums, double zq, double, double kl) const noexcept
                {
                    const double kept = sums[1] / zq;
                    return {kl + kept, -kept};
                }
            };

            /**
             * The generalized Jensen-Shannon divergence of TRL's GKD: with M = beta P + (1 - beta) Q,
             * beta KL(P || M) + (1 - beta) KL(Q || M); 0 < beta < 1 (beta = 0 and 1 are the forward and
             * reverse KL, which the API maps to those policies).
             */
            struct jsd_policy
            {
                static constexpr const char* name = "generalized_jsd";
                static constexpr const char* out_name = "GeneralizedJSDLoss::forward_backward_out";
                static constexpr bool nonnegative = true; ///< a row is never below 0
                double beta;
                double log_beta;   ///< log(beta), taken once per call, not per batch
                double log1m_beta; ///< log(1 - beta)

                explicit jsd_policy(double b) noexcept
                    : beta(b)
                    , log_beta(std::log(b))
                    , log1m_beta(std::log1p(-b))
                {
                }

                /// beta = 0 is the forward KL and beta = 1 the reverse KL (TRL's convention): their
                /// own policies, not a mixture with a weight of 0 (whose 0 * log 0 would be NaN).
                template <class Options, class F>
                static decltype(auto) with_options(const Options& options, F&& f)
                {
                    if (options.beta() == 0.)
                    {
                        return f(forward_kl_policy{});
                    }
                    if (options.beta() == 1.)
                    {
                        return f(reverse_kl_policy{});
                    }
                    return f(jsd_policy(options.beta()));
                }

                template <class B>
                divergence_terms<B> operator()(const B& lp, const B& lq, const B& p, const B& q) const noexcept
                {
                    using T = value_type_t<B>;
                    const B wp(static_cast<T>(beta)), wq(static_cast<T>(1. - beta));
                    const B lwp(static_cast<T>(log_beta)), lwq(static_cast<T>(log1m_beta));
                    // log m = log(beta p + (1 - beta) q), as a log-sum-exp of the two logs.
                    const B u = lp + lwp, v = lq + lwq;
                    const B hi = max(u, v), lo = min(u, v);
                    // NaN in either row (lp + lq) stays in log m, and so reaches both gradients (max and
                    // an equality may drop it under -ffast-math); where lp = lq, m = p exactly, so equal
                    // rows give 0, not a rounding residue.
                    const B either_nan = lp + lq;
                    const auto nan = is_nan(either_nan);
                    const B lm = select(nan, either_nan, hi + log_one_to_two(B(1) + exp_nonpositive(lo - hi)));
                    const auto equal = both(lp == lq, !nan);
                    const B dp = select(either(is_zero(p), equal), B(0), p * (lp - lm));
                    const B dq = select(either(is_zero(q), equal), B(0), q * (lq - lm));
                    return {wp * dp + wq * dq, wq * dq, wp * dp};
                }
            };

            /**
             * torchtune's symmetric KL: ratio KL(P || Q) + (1 - ratio) KL(Q || P), each as its own
             * policy defines it (the reverse over the classes the teacher keeps); ratio in [0, 1],
             * its ends the forward and the reverse KL's own policies.
             */
            struct symmetric_kl_policy
            {
                static constexpr const char* name = "symmetric_kl";
                static constexpr const char* out_name = "SymmetricKLLoss::forward_backward_out";
                /// Not clamped at 0: its reverse part may be below 0 (see reverse_kl_policy).
                static constexpr bool nonnegative = false;
                double ratio;

                template <class Options, class F>
                static decltype(auto) with_options(const Options& options, F&& f)
                {
                    if (options.ratio() == 1.)
                    {
                        return f(forward_kl_policy{});
                    }
                    if (options.ratio() == 0.)
                    {
                        return f(reverse_kl_policy{});
                    }
                    return f(symmetric_kl_policy{options.ratio()});
                }

                template <class B>
                divergence_terms<B> operator()(const B& lp, const B& lq, const B& p, const B& q) const noexcept
                {
                    using T = value_type_t<B>;
                    const B wf(static_cast<T>(ratio)), wr(static_cast<T>(1. - ratio));
                    const divergence_terms<B> f = forward_kl_policy{}(lp, lq, p, q);
                    const divergence_terms<B> r = reverse_kl_policy{}(lp, lq, p, q);
                    return {wf * f.term + wr * r.term, wf * f.pull_student + wr * r.pull_student,
                            wf * f.pull_teacher + wr * r.pull_teacher};
                }

                /// Loss only: the forward KL's sum and the reverse KL's two.
                template <class B>
                shifted_sums<B, 3> shifted(const B& a, const B& b, const B& ea, const B& eb) const noexcept
                {
                    const shifted_sums<B, 1> f = forward_kl_policy{}.shifted(a, b, ea, eb);
                    const shifted_sums<B, 2> r = reverse_kl_policy{}.shifted(a, b, ea, eb);
                    return {f[0], r[0], r[1]};
                }

                double row_value(const shifted_totals<3>& sums, double zq, double zp) const noexcept
                {
                    return ratio * forward_value(sums, zq, zp) + (1. - ratio) * reverse_value(sums, zq, zp);
                }

                row_pull_sums pull_sums(const shifted_totals<3>& sums, double zq, double zp, double) const noexcept
                {
                    const row_pull_sums f =
                        forward_kl_policy{}.pull_sums({sums[0]}, zq, zp, forward_value(sums, zq, zp));
                    const row_pull_sums r =
                        reverse_kl_policy{}.pull_sums({sums[1], sums[2]}, zq, zp, reverse_value(sums, zq, zp));
                    return {ratio * f.student + (1. - ratio) * r.student, ratio * f.teacher + (1. - ratio) * r.teacher};
                }

            private:

                static double forward_value(const shifted_totals<3>& sums, double zq, double zp) noexcept
                {
                    return forward_kl_policy{}.row_value({sums[0]}, zq, zp);
                }

                static double reverse_value(const shifted_totals<3>& sums, double zq, double zp) noexcept
                {
                    return reverse_kl_policy{}.row_value({sums[1], sums[2]}, zq, zp);
                }
            };
        }
    }
}

#endif
