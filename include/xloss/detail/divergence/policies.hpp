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
                shifted_sums<B> shifted(const B& a, const B& b, const B& ea, const B&) const noexcept
                {
                    return {select(is_zero(ea), B(0), ea * (a - b)), B(0)};
                }

                double row_value(double first, double, double zq, double zp) const noexcept
                {
                    return first / zp - std::log(zp) + std::log(zq);
                }

                /// sum(-p) = -1; sum(p (l + 1)) = KL + 1.
                row_pull_sums pull_sums(double, double, double, double, double kl) const noexcept
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
                shifted_sums<B> shifted(const B& a, const B& b, const B&, const B& eb) const noexcept
                {
                    const auto masked = either(is_neg_inf(a), is_zero(eb));
                    return {select(masked, B(0), eb * (b - a)), select(masked, B(0), eb)};
                }

                double row_value(double first, double second, double zq, double zp) const noexcept
                {
                    return (first + (std::log(zp) - std::log(zq)) * second) / zq;
                }

                /// Over the kept classes K: sum(q (l + 1)) = KL + q(K); sum(-q) = -q(K).
                row_pull_sums pull_sums(double, double second, double zq, double, double kl) const noexcept
                {
                    const double kept = second / zq;
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
                    const B lm = select(nan, either_nan, hi + log_one_to_two(B(1) + softmax_exp(lo - hi)));
                    const auto equal = both(lp == lq, !nan);
                    const B dp = select(either(is_zero(p), equal), B(0), p * (lp - lm));
                    const B dq = select(either(is_zero(q), equal), B(0), q * (lq - lm));
                    return {wp * dp + wq * dq, wq * dq, wp * dp};
                }
            };
        }
    }
}

#endif
