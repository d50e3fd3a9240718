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
// rather than relying on log(0) = -inf, which -ffast-math does not keep.

#include <limits>

#include "fast_math.hpp"
#include "simd.hpp"

namespace xloss
{
    namespace detail
    {
        template <class B>
        inline B neg_inf() noexcept
        {
            return B(-std::numeric_limits<value_type_t<B>>::infinity());
        }

        /// t * (log t - x)
        struct kl_term
        {
            template <class B>
            static B any_values(const B& x, const B& t) noexcept
            {
                const B zero(0);
                return select((t == zero) & (x == x), zero, t * (kernel_log(t) - x));
            }

            template <class B>
            B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
            {
                return any_values(x, t);
            }

#if XLOSS_USE_SIMD && (defined(__x86_64__) || defined(_M_X64))
            // The hot path: when t holds only positive normal numbers and zeros and x only finite
            // numbers, t * (log t - x) needs no select (a zero target gives 0 times a finite value).
            template <class A, if_avx512dq<A> = 0>
            xsimd::batch<float, A> operator()(const xsimd::batch<float, A>& x, const xsimd::batch<float, A>& t,
                                              const xsimd::batch<float, A>& /*g*/) const noexcept
            {
                if (kl_plain_lanes(x, t))
                {
                    return t * (log_normal(t) - x);
                }
                return any_values(x, t);
            }
#endif
        };

        /// exp(t) * (t - x)
        struct kl_term_log
        {
            template <class B>
            B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
            {
                const B zero(0);
                return select((t == neg_inf<B>()) & (x == x), zero, exp(t) * (t - x));
            }
        };

        /// d/dx: -t * g
        struct kl_input_grad
        {
            template <class B>
            B operator()(const B& /*x*/, const B& t, const B& g) const noexcept
            {
                const B zero(0);
                return select(t == zero, zero, -t * g);
            }
        };

        /// d/dx with log_target: -exp(t) * g
        struct kl_input_grad_log
        {
            template <class B>
            B operator()(const B& /*x*/, const B& t, const B& g) const noexcept
            {
                const B zero(0);
                return select(t == neg_inf<B>(), zero, -exp(t) * g);
            }
        };

        /// d/dt: (log t + 1 - x) * g
        struct kl_target_grad
        {
            template <class B>
            B operator()(const B& x, const B& t, const B& g) const noexcept
            {
                const B zero(0);
                return select((t == zero) & (x == x), zero, (kernel_log(t) + B(1) - x) * g);
            }
        };

        /// d/dt with log_target: exp(t) * (t - x + 1) * g
        struct kl_target_grad_log
        {
            template <class B>
            B operator()(const B& x, const B& t, const B& g) const noexcept
            {
                const B zero(0);
                return select((t == neg_inf<B>()) & (x == x), zero, exp(t) * (t - x + B(1)) * g);
            }
        };
    }
}

#endif
