/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_FAST_MATH_HPP
#define XLOSS_DETAIL_KERNELS_FAST_MATH_HPP

// The log and exp of the kernels, named by what they compute. Each is defined for scalars (the C
// library's) and for xsimd batches; the contract below is the batches'. xloss's own (fast_log,
// log_normal, exp_normal) are faster than xsimd's (no division, no branch); their coefficients and
// tables come from scripts/fit_fast_math.py (near-minimax fits in 40-digit arithmetic), and
// tests/test_fast_math.cpp measures them against the C library (exhaustively for float: label "long").
//
// | function          | lanes          | max error (measured)    | valid range            | outside it            |
// |-------------------|----------------|-------------------------|------------------------|-----------------------|
// | fast_log          | float          | 0.95 ulp, every float   | x >= 0, subnormals too | IEEE: 0 -> -inf,      |
// |                   |                |                         |                        | x < 0 -> NaN, +inf,   |
// |                   |                |                         |                        | NaN kept              |
// | log_normal        | float, double  | 1.81 ulp, every float;  | positive normal finite | finite, meaningless   |
// | (AVX-512DQ only,  |                | 1.72 ulp, 17 M doubles  |                        | (callers check)       |
// | arch/x86_avx512)  |                |                         |                        |                       |
// | log_ieee          | float: fast_log; double: xsimd's log, subnormals scaled first; IEEE special values   |
// | log_one_to_two    | any            | log_normal's or         | [1, 2] and NaN         | log_ieee's            |
// |                   |                | log_ieee's              |                        |                       |
// | exp_normal        | float          | 0.95 ulp with FMA, 1.24 | [exp_normal_lo,        | any value (-inf gives |
// |                   |                | without, every argument | exp_normal_hi]         | NaN): callers select  |
// | exp_mid_range     | float, double  | xsimd's exp             | results normal; under  | xsimd 8.1 flushes     |
// |                   |                |                         | g++ -ffast-math, above | subnormal results, 0; |
// |                   |                |                         | twice the smallest     | overflows early       |
// | exp_ieee          | float, double  | exp_mid_range's; the    | every argument         | (none)                |
// |                   |                | C library's at both     |                        |                       |
// |                   |                | ends, NaN kept          |                        |                       |
// | exp_nonpositive   | float, double  | float: exp_normal's     | x <= 0 (shifted        | +x: as for x <= 0     |
// |                   |                | within exp_plain_limit, | logits), -inf -> 0,    |                       |
// |                   |                | exp_ieee's else; double:| NaN kept               |                       |
// |                   |                | exp_mid_range's         |                        |                       |
// | exp_normal_range  | float, double  | exp_normal's (float),   | results normal, or     | any value: callers    |
// |                   |                | exp_mid_range's         | -inf                   | select                |
//
// Instruction-set code (the table logs, the register barrier exp_normal rounds through, the exp
// per lane where -ffast-math breaks xsimd's) lives in arch/, behind the hooks of arch.hpp.

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "arch.hpp"
#include "classify.hpp"
#include "simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// |t| up to which exp(t) is a normal number with room: -(log of the smallest normal + 1).
            template <class T>
            constexpr T exp_plain_limit() noexcept
            {
                return std::is_same<T, float>::value ? T(86.3365f) : T(707.3964185322641);
            }

#if XLOSS_USE_SIMD
            /// y = log(x) where x is positive and finite; log's IEEE values elsewhere: 0 -> -inf,
            /// negative -> NaN, +inf and NaN are x itself. Told by the bits, so -ffast-math keeps them.
            template <class T, class A>
            inline xsimd::batch<T, A> log_special_values(const xsimd::batch<T, A>& x,
                                                         const xsimd::batch<T, A>& y) noexcept
            {
                using F = xsimd::batch<T, A>;
                const F special = xsimd::select(is_zero(x), F(-std::numeric_limits<T>::infinity()),
                                                xsimd::select(x < F(T(0)), F(std::numeric_limits<T>::quiet_NaN()), x));
                return xsimd::select(is_positive_finite(x), y, special);
            }

            template <class A>
            inline xsimd::batch<float, A> fast_log(const xsimd::batch<float, A>& x) noexcept
            {
                using F = xsimd::batch<float, A>;
                using I = xsimd::batch<std::int32_t, A>;
                // A subnormal is m 2^-149 with m its integer bits: log m - 149 ln 2, m converted exactly.
                // (Integer work, so that flush-to-zero arithmetic, which reads subnormals as 0, does not
                // change it.)
                const I raw = compat::bitwise_cast<std::int32_t>(x);
                const auto subnormal = raw < I(0x00800000);
                const I bits = xsimd::select(subnormal, compat::bitwise_cast<std::int32_t>(xsimd::to_float(raw)), raw);
                // x = 2^k z with z in [2/3, 4/3): k from the bits of x / (2/3), z by putting k back.
                const I shifted = bits - I(0x3f2aaaab);
                const I k = shifted >> 23;
                const F z = compat::bitwise_cast<float>(bits - (shifted & I(std::int32_t(0xff800000u))));
                const F kf = xsimd::to_float(k - xsimd::select(subnormal, I(149), I(0)));
                // log(z) = log1p(r) = r + r^2 Q(r), |r| <= 1/3.
                const F r = z - F(1.f);
                F q = F(-0x1.fcd036p-4f);
                q = compat::fma(q, r, F(0x1.1990bcp-3f));
                q = compat::fma(q, r, F(-0x1.f75896p-4f));
                q = compat::fma(q, r, F(0x1.1fdcfp-3f));
                q = compat::fma(q, r, F(-0x1.557832p-3f));
                q = compat::fma(q, r, F(0x1.99bf86p-3f));
                q = compat::fma(q, r, F(-0x1.ffffb6p-3f));
                q = compat::fma(q, r, F(0x1.55552cp-2f));
                q = compat::fma(q, r, F(-0x1p-1f));
                // k ln2 with ln2 rounded to float: at most 0.06 ulp of the result for any k.
                const F y = compat::fma(kf, F(0x1.62e43p-1f), compat::fma(r * r, q, r));
                return log_special_values(x, y);
            }

            /**
             * v, opaque to the optimizer under -ffast-math, which lets the compiler reassociate
             * (x - k hi) - k lo into x - k (hi + lo) where the multiply-adds are separate
             * instructions (x86 without FMA), undoing the two-part reduction (68 ulp measured).
             */
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> keep_rounding(const xsimd::batch<float, A>& v) noexcept
            {
#if defined(__FAST_MATH__)
                return opaque(v);
#else
                return v;
#endif
            }

            /// The arguments whose exp is a normal float, a little inside: [log(FLT_MIN) + 1, log(FLT_MAX) - 1].
            inline constexpr float exp_normal_lo = -exp_plain_limit<float>();
            inline constexpr float exp_normal_hi = 87.7228f;

            /**
             * exp(x) for x in [exp_normal_lo, exp_normal_hi] (at most 2 ulp); any value for other
             * lanes (a -inf one gives NaN), which the callers select away. x = k ln2 + r, |r| <= ln2 / 2, and
             * e^x = 2^k (1 + r + r^2 P(r)), P of degree 4 (scripts/fit_fast_math.py), 2^k put into the
             * exponent bits, which is exact as the result is normal.
             */
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> exp_normal(const xsimd::batch<float, A>& x) noexcept
            {
                using F = xsimd::batch<float, A>;
                using I = xsimd::batch<std::int32_t, A>;
                F kf;
                I exponent;
                if constexpr (opaque_barrier<F>::value)
                {
                    // k = x / ln2 rounded: adding 1.5 2^23 leaves k in the low bits (|k| < 2^22), and
                    // shifted by 23 the bits of z are k's in the exponent. The sum is kept opaque: the
                    // compiler may otherwise fold (y + c) - c to y (-ffast-math, -fassociative-math).
                    const F shifter(0x1.8p23f);
                    const F z = opaque(compat::fma(x, F(0x1.715476p+0f), shifter));
                    kf = z - shifter;
                    exponent = compat::bitwise_cast<std::int32_t>(z) << 23;
                }
                else
                {
                    const I k = xsimd::nearbyint_as_int(x * F(0x1.715476p+0f));
                    kf = xsimd::to_float(k);
                    exponent = k << 23;
                }
                // r = x - k ln2, ln2 in two parts (Cody and Waite). The high part has 15 significant bits,
                // so k times it is exact for |k| <= 2^8 and x - k hi is exact (x is within ln2 / 2 of k ln2):
                // r is as accurate with a multiply and an add as with a fused multiply-add (SSE2, AVX).
                const F r = compat::fma(kf, F(-0x1.7f7d1cp-20f), keep_rounding(compat::fma(kf, F(-0x1.62e4p-1f), x)));
                F p = F(0x1.6d10fcp-10f);
                p = compat::fma(p, r, F(0x1.120b62p-7f));
                p = compat::fma(p, r, F(0x1.55551ap-5f));
                p = compat::fma(p, r, F(0x1.5554dep-3f));
                p = compat::fma(p, r, F(0.5f));
                // 1 + r (1 + r P(r)): two multiply-adds, no separate r^2 and sum.
                const F e = compat::fma(compat::fma(p, r, F(1.f)), r, F(1.f));
                return compat::bitwise_cast<float>(compat::bitwise_cast<std::int32_t>(e) + exponent);
            }

#endif

            /// The log the kernels use: fast_log for float batches, xsimd's or the C library's otherwise.
            template <class B>
            inline B log_ieee(const B& x) noexcept
            {
                return log(x);
            }

            /// The exp the kernels use: the C library's for scalars, xsimd's for batches.
            template <class B>
            inline B exp_ieee(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp without exp_ieee's range fixes: the C library's for scalars, xsimd's for batches (below).
            template <class B>
            inline B exp_mid_range(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp of a shifted logit (at most 0, or NaN): the C library's for scalars, xsimd's for batches.
            template <class B>
            inline B exp_nonpositive(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp of an argument of a normal result, or -inf: the C library's for scalars.
            template <class B>
            inline B exp_normal_range(const B& x) noexcept
            {
                return exp(x);
            }

#if XLOSS_USE_SIMD
            /**
             * xsimd's exp, inlined with what it calls whatever the compiler's budget for the translation
             * unit (a large unit spent it: xsimd's exp became a call per batch in a gradient loop, 12%
             * slower). On x86 without SSE4.1, xsimd rounds with (x + 2^23) - 2^23, which -ffast-math
             * lets the compiler fold to x (clang does: a distillation loss off by 26 times); there,
             * built with -ffast-math, the C library's exp per lane instead.
             */
            template <class T, class A>
            XLOSS_INLINE XLOSS_FLATTEN xsimd::batch<T, A> exp_mid_range(const xsimd::batch<T, A>& x) noexcept
            {
                if constexpr (exp_per_lane<xsimd::batch<T, A>>::value)
                {
                    return per_lane(x,
                                    [](T v)
                                    {
                                        return std::exp(v);
                                    });
                }
                else
                {
                    return xsimd::exp(x);
                }
            }

            /// xsimd 8.1's exp flushes results below the smallest normal number to 0 (exp(-88.5f) is
            /// 3.6e-39, a subnormal) and overflows a little before the largest finite result
            /// (exp(709.75) is 1.6e308): such arguments are shifted by 64 ln 2 towards 0 and the
            /// result scaled back by a power of 2, exactly, so both ends come out as the C library's.
            template <class T, class A>
            XLOSS_INLINE XLOSS_FLATTEN xsimd::batch<T, A> exp_ieee(const xsimd::batch<T, A>& x) noexcept
            {
                using F = xsimd::batch<T, A>;
                const T shift = T(44.3614195558364998); // 64 ln 2
                const auto low = x < F(std::log(std::numeric_limits<T>::min()));
                const auto high = x > F(std::log(std::numeric_limits<T>::max()) - 1);
                const F e = exp_mid_range(x + xsimd::select(low, F(shift), xsimd::select(high, F(-shift), F(0))));
                // NaN kept NaN: under -ffast-math, clang's build of xsimd's exp gives 0 for it.
                return xsimd::select(is_nan(x), x,
                                     e * xsimd::select(low, F(T(0x1p-64)), xsimd::select(high, F(T(0x1p64)), F(1))));
            }

            /// Without exp_ieee's range fixes, which a softmax numerator does not need (a result
            /// below the smallest normal number adds nothing next to the row's maximum, exp(0) = 1).
            template <class T, class A>
            inline xsimd::batch<T, A> exp_nonpositive(const xsimd::batch<T, A>& x) noexcept
            {
                return xsimd::select(is_nan(x), x, exp_mid_range(x));
            }

            /// For float, exp_normal where every lane is within exp_plain_limit of 0 or -inf (a masked
            /// class, 0): the lanes of a row's shifted logits within 86 of its maximum and of its
            /// log-probabilities, all of them but in rare rows.
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> exp_nonpositive(const xsimd::batch<float, A>& x) noexcept
            {
                using F = xsimd::batch<float, A>;
                using I = xsimd::batch<std::int32_t, A>;
                // One integer compare of |x|'s bits, which NaN fails whatever -ffast-math assumes.
                const I bits = compat::bitwise_cast<std::int32_t>(x);
                const auto normal =
                    compat::mask_cast<float>((bits & I(0x7fffffff)) <= I(bits_of(exp_plain_limit<float>())));
                if (xsimd::all(normal | is_neg_inf(x)))
                {
                    return xsimd::select(normal, exp_normal(x), F(0.f));
                }
                // exp_ieee, not exp_mid_range: xsimd scales its result by 2^k in a multiply that g++
                // -ffast-math splits, and flush-to-zero then drops the subnormal part (exp(-87) gave
                // 2^-126, 29% low, in the test suite's build on AVX2). Inlined, not called: a call in
                // the row loops, even on this rare path, makes the compiler keep their batches on the
                // stack (every vector register is caller-saved).
                return exp_ieee(x);
            }

            /// exp where every lane of x is a normal result's argument or -inf (plain_exp_lanes):
            /// exp_normal for float (a -inf lane gives NaN, which the callers select away).
            template <class T, class A>
            inline xsimd::batch<T, A> exp_normal_range(const xsimd::batch<T, A>& x) noexcept
            {
                return exp_mid_range(x);
            }

            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> exp_normal_range(const xsimd::batch<float, A>& x) noexcept
            {
                return exp_normal(x);
            }

            template <class A>
            inline xsimd::batch<float, A> log_ieee(const xsimd::batch<float, A>& x) noexcept
            {
                return fast_log(x);
            }

            /// xsimd 8.1's double log is wrong for subnormals (it gives about log(4.9e-324) for all of
            /// them): scale them into the normal range first (2^52), and take 52 ln 2 off.
            template <class A>
            inline xsimd::batch<double, A> log_ieee(const xsimd::batch<double, A>& x) noexcept
            {
                using F = xsimd::batch<double, A>;
                if constexpr (log_per_lane<F>::value)
                {
                    return log_special_values(x, per_lane(x,
                                                          [](double v)
                                                          {
                                                              return std::log(v);
                                                          }));
                }
                const auto subnormal = (x < F(std::numeric_limits<double>::min())) & (x > F(0.));
                const F y = xsimd::log(xsimd::select(subnormal, x * F(0x1p52), x));
                return log_special_values(x, xsimd::select(subnormal, y - F(0x1.205966f2b4f12p+5), y));
            }

#endif

            /// log(x) for x in [1, 2] or NaN (a log-sum-exp's log(1 + e^(lo - hi))): log_ieee, or the
            /// table log where AVX-512DQ has it, NaN kept.
            template <class B>
            inline B log_one_to_two(const B& x) noexcept
            {
                return log_ieee(x);
            }

#if XLOSS_USE_SIMD
            template <class T, class A, if_table_log<T, A> = 0>
            XLOSS_INLINE xsimd::batch<T, A> log_one_to_two(const xsimd::batch<T, A>& x) noexcept
            {
                return xsimd::select(is_nan(x), x, log_normal(x));
            }
#endif
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
