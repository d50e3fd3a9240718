/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KL_DIV_OPS_HPP
#define XLOSS_DETAIL_KL_DIV_OPS_HPP

// The pointwise formulas of the KL-divergence loss and of its two gradients.
// Each functor works on an xsimd batch or on a plain scalar (type B) and takes
// (x, t, g): input, target, and the incoming gradient (ignored by the loss).
//
// Where the target is zero (log_target: -inf) the term and both gradients are
// exactly 0, including for a masked input x = -inf; only a NaN input still
// gives NaN in the term and the target gradient. The selects below do this,
// rather than relying on log(0) = -inf, and tell NaN and infinities by their
// bits (classify.hpp), so that -ffast-math changes none of it.

#include <cmath>
#include <limits>

#include "../kernels/classify.hpp"
#include "../kernels/fast_math.hpp"
#include "../kernels/simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Where a probability target is 0 and the input is not NaN: the term and both gradients are 0.
            template <class B>
            inline auto zero_target(const B& x, const B& t) noexcept
            {
                return both(is_zero(t), !is_nan(x));
            }

            /// Where a log-target is -inf (a masked class) and the input is not NaN: likewise 0.
            template <class B>
            inline auto masked_log_target(const B& x, const B& t) noexcept
            {
                return both(is_neg_inf(t), !is_nan(x));
            }

            /// t * (log t - x)
            struct kl_term
            {
                template <class B>
                static B any_values(const B& x, const B& t) noexcept
                {
                    const B zero(0);
                    return select(zero_target(x, t), zero, t * (log_ieee(t) - x));
                }

                template <class B>
                B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
                {
                    return any_values(x, t);
                }

#if XLOSS_USE_SIMD
                // The hot path, where the instruction set has the table log: when t holds only positive
                // normal numbers and zeros and x only finite numbers, t * (log t - x) needs no select (a
                // zero target gives 0 times a finite value).
                template <class T, class A, if_table_log<T, A> = 0>
                XLOSS_INLINE xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& t,
                                                           const xsimd::batch<T, A>& /*g*/) const noexcept
                {
                    if (finite_and_normal_or_zero(x, t))
                    {
                        // + 0: a zero target gives +0, as PyTorch and the exact path do (0 times the
                        // finite log_normal(0) - x is -0 where x > log_normal(0)). Under -ffast-math
                        // (no signed zeros) the compiler may drop it, and -0 comes back.
                        return t * (log_normal(t) - x) + xsimd::batch<T, A>(T(0));
                    }
                    return rare_values(x, t);
                }

                /// any_values out of line, for the batches the fast path leaves.
                template <class B>
                static XLOSS_NOINLINE B rare_values(const B& x, const B& t) noexcept
                {
                    return any_values(x, t);
                }
#endif
            };

            /**
             * exp(t) * d, where exp(t) leaves the floating-point range, by its limit. `src` is what
             * makes d infinite in the mathematics (x, or g): where exp(t) underflows to 0, the limit
             * is d if src is infinite, else 0 (d may still have overflowed); where d is 0 it is 0,
             * also if exp(t) overflowed. NaN stays NaN.
             */
            template <class B>
            inline B exp_times(const B& t, const B& d, const B& src) noexcept
            {
                const B zero(0);
                const B e = exp_ieee(t);
                const B v = select(is_zero(d), zero, e * d);
                return select(both(is_zero(e), !is_nan(d)), select(is_inf(src), d, zero), v);
            }

            /// Whether one lane mask holds in every lane (a scalar's bool, or xsimd::all for batches).
            inline bool all_lanes(bool b) noexcept
            {
                return b;
            }

#if XLOSS_USE_SIMD
            template <class T, class A>
            inline bool all_lanes(const xsimd::batch_bool<T, A>& b) noexcept
            {
                return xsimd::all(b);
            }
#endif

            /**
             * Whether, in every lane, exp(t) is a normal number or t is -inf (a masked class, which the
             * ops select away): then exp(t) * d needs none of exp_times's limits (an infinite x makes
             * exp(t) * d infinite by itself, d = t - x cannot overflow on its own, and a product that
             * overflows does so in the mathematics too).
             */
            template <class B>
            inline bool plain_exp_lanes(const B& t) noexcept
            {
                using T = value_type_t<B>;
                // log of the smallest normal number and of the largest, a little inside.
                const B lo(static_cast<T>(std::log(std::numeric_limits<T>::min()) + 1));
                const B hi(static_cast<T>(std::log(std::numeric_limits<T>::max()) - 1));
                return all_lanes(both(either(t > lo, is_neg_inf(t)), both(t < hi, !is_nan(t))));
            }

            /// The log-target ops' fast path: every lane of x finite, every lane of t -inf or with
            /// |t| <= -(log of the smallest normal number + 1), so exp(t) is normal; then an op is
            /// exp(t) times a finite number, the masked classes selected away.
            template <class T>
            inline bool plain_log_target_lanes(T x, T t) noexcept
            {
                return is_finite(x) && (is_neg_inf(t) || (is_finite(t) && std::abs(t) <= exp_plain_limit<T>()));
            }

#if XLOSS_USE_SIMD
            /// The same from the bits, two integer compares per argument (NaN fails whatever
            /// -ffast-math assumes).
            template <class T, class A>
            XLOSS_INLINE bool plain_log_target_lanes(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& t) noexcept
            {
                using I = xsimd::batch<typename float_bits<T>::type, A>;
                const I mask(float_bits<T>::abs_mask);
                const I tb = bits_of(t);
                const I limit(bits_of(exp_plain_limit<T>()));
                const I neg_inf(bits_of(-std::numeric_limits<T>::infinity()));
                return xsimd::all(compat::mask_cast<T>(((bits_of(x) & mask) < I(float_bits<T>::inf))
                                                       & (((tb & mask) <= limit) | (tb == neg_inf))));
            }
#endif

            /// exp(t) * (t - x)
            struct kl_term_log
            {
                template <class B>
                XLOSS_INLINE B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
                {
                    if (plain_log_target_lanes(x, t))
                    {
                        return select(is_neg_inf(t), B(0), exp_normal_range(t) * (t - x));
                    }
                    return any_values(x, t);
                }

                template <class B>
                static XLOSS_NOINLINE B any_values(const B& x, const B& t) noexcept
                {
                    return select(masked_log_target(x, t), B(0),
                                  plain_exp_lanes(t) ? exp_normal_range(t) * (t - x) : exp_times(t, t - x, x));
                }
            };

            /// d/dx: -t * g
            struct kl_input_grad
            {
                template <class B>
                B operator()(const B& /*x*/, const B& t, const B& g) const noexcept
                {
                    const B zero(0);
                    return select(is_zero(t), zero, -t * g);
                }
            };

            /// d/dx with log_target: -exp(t) * g
            struct kl_input_grad_log
            {
                template <class B>
                XLOSS_INLINE B operator()(const B& /*x*/, const B& t, const B& g) const noexcept
                {
                    if (plain_log_target_lanes(g, t))
                    {
                        return select(is_neg_inf(t), B(0), -exp_normal_range(t) * g);
                    }
                    return any_values(t, g);
                }

                template <class B>
                static XLOSS_NOINLINE B any_values(const B& t, const B& g) noexcept
                {
                    return select(is_neg_inf(t), B(0),
                                  plain_exp_lanes(t) ? -exp_normal_range(t) * g : -exp_times(t, g, g));
                }
            };

            /// d/dt: (log t + 1 - x) * g
            struct kl_target_grad
            {
                template <class B>
                B operator()(const B& x, const B& t, const B& g) const noexcept
                {
                    const B zero(0);
                    return select(zero_target(x, t), zero, (log_ieee(t) + B(1) - x) * g);
                }
            };

            /**
             * The probability-target ops for a policy or an epsilon other than PyTorch's: MXNet's
             * `t * (log(t + eps) - x)`, and Paddle's (`zero`) 0 wherever the target is not positive.
             */
            struct general_prob
            {
                double eps;            ///< added to t inside the log
                bool zero_nonpositive; ///< target_policy::zero

                /// Where term and gradients are exactly 0.
                template <class B>
                auto zero_mask(const B& x, const B& t) const noexcept
                {
                    return zero_nonpositive ? is_not_positive(t) : zero_target(x, t);
                }

                template <class B>
                B log_t(const B& t) const noexcept
                {
                    return log_ieee(t + B(static_cast<value_type_t<B>>(eps)));
                }
            };

            /// t * (log(t + eps) - x)
            struct kl_term_general
            {
                general_prob p;

                template <class B>
                B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
                {
                    return select(p.zero_mask(x, t), B(0), t * (p.log_t(t) - x));
                }
            };

            /// d/dx: -t * g
            struct kl_input_grad_general
            {
                general_prob p;

                template <class B>
                B operator()(const B& /*x*/, const B& t, const B& g) const noexcept
                {
                    const B zero(0);
                    return select(p.zero_nonpositive ? is_not_positive(t) : is_zero(t), zero, -t * g);
                }
            };

            /// d/dt: (log(t + eps) + t / (t + eps) - x) * g; at t = 0 with eps > 0 that is log(eps) - x,
            /// the true derivative, not 0.
            struct kl_target_grad_general
            {
                general_prob p;

                template <class B>
                B operator()(const B& x, const B& t, const B& g) const noexcept
                {
                    using T = value_type_t<B>;
                    const B zero(0);
                    const B ratio = p.eps == 0. ? B(1) : t / (t + B(static_cast<T>(p.eps)));
                    const B d = (p.log_t(t) + ratio - x) * g;
                    if (p.eps == 0.)
                    {
                        return select(p.zero_mask(x, t), zero, d);
                    }
                    return p.zero_nonpositive ? select(is_not_positive(t), zero, d) : d;
                }
            };

            /// d/dt with log_target: exp(t) * (t - x + 1) * g
            struct kl_target_grad_log
            {
                template <class B>
                XLOSS_INLINE B operator()(const B& x, const B& t, const B& g) const noexcept
                {
                    if (plain_log_target_lanes(x, t) && all_lanes(is_finite(g)))
                    {
                        return select(is_neg_inf(t), B(0), exp_normal_range(t) * (t - x + B(1)) * g);
                    }
                    return any_values(x, t, g);
                }

                template <class B>
                static XLOSS_NOINLINE B any_values(const B& x, const B& t, const B& g) noexcept
                {
                    const B d = t - x + B(1);
                    return select(masked_log_target(x, t), B(0),
                                  (plain_exp_lanes(t) ? exp_normal_range(t) * d : exp_times(t, d, x)) * g);
                }
            };
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
