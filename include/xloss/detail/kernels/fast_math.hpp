/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_FAST_MATH_HPP
#define XLOSS_DETAIL_KERNELS_FAST_MATH_HPP

// xloss's own vectorised log and exp, faster than xsimd's (no division, no branch):
// - fast_log, for float batches: one polynomial, IEEE special values kept (0 -> -inf,
//   negative -> NaN, +inf -> +inf, NaN -> NaN, subnormals exact); 0.95 ulp at most over
//   every positive float;
// - log_normal (AVX-512DQ), float and double: a 16-entry table in registers and a short
//   polynomial, for positive normal numbers only (the callers check their batches);
// - exp_normal, for float batches: for arguments whose exp is a normal float.
// tests/test_fast_math.cpp measures their errors against the C library's (exhaustively
// for float, label "long"). The coefficients and tables come from
// scripts/fit_fast_math.py (near-minimax Chebyshev fits in 40-digit arithmetic).

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

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

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define XLOSS_OPAQUE_ASM 1
#else
#define XLOSS_OPAQUE_ASM 0
#endif

            /// v, opaque to the optimizer where an empty asm can hold it (GCC and clang on x86): no
            /// algebra of the compiler's reaches through it.
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> opaque(const xsimd::batch<float, A>& v) noexcept
            {
#if XLOSS_OPAQUE_ASM
                typename xsimd::batch<float, A>::register_type r = v;
                __asm__("" : "+v"(r));
                return r;
#else
                return v;
#endif
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
#if XLOSS_OPAQUE_ASM
                // k = x / ln2 rounded: adding 1.5 2^23 leaves k in the low bits (|k| < 2^22), and
                // shifted by 23 the bits of z are k's in the exponent. The sum is kept opaque: the
                // compiler may otherwise fold (y + c) - c to y (-ffast-math, -fassociative-math).
                const F shifter(0x1.8p23f);
                const F z = opaque(compat::fma(x, F(0x1.715476p+0f), shifter));
                const F kf = z - shifter;
                const I exponent = compat::bitwise_cast<std::int32_t>(z) << 23;
#else
                const I k = xsimd::nearbyint_as_int(x * F(0x1.715476p+0f));
                const F kf = xsimd::to_float(k);
                const I exponent = k << 23;
#endif
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

#if defined(__x86_64__) || defined(_M_X64)
            // Defined in every translation unit, whatever its -m flags, so that the ops' definitions agree
            // across translation units built for different instruction sets (runtime dispatch); only a
            // translation unit compiled for AVX512DQ instantiates them.

            /// Archs with AVX512DQ: in-register 16-entry tables and one-instruction classification.
            template <class A>
            using if_avx512dq = std::enable_if_t<std::is_base_of<xsimd::avx512dq, A>::value, int>;

            // 1/c_i and -log(1/c_i) for the 16 intervals of z in [0x1.66p-1, 0x1.66p+0): see
            // scripts/fit_fast_math.py, which generates them.
            alignas(64) inline constexpr float log_table_invc[16] = {
                0x1.661ec6p+0f, 0x1.571ed4p+0f, 0x1.49539ep+0f, 0x1.3c995ap+0f, 0x1.30d19p+0f,  0x1.25e228p+0f,
                0x1.1bb4a4p+0f, 0x1.12358ep+0f, 0x1.0953f4p+0f, 0x1p+0f,        0x1.e573acp-1f, 0x1.ca4b3p-1f,
                0x1.b20364p-1f, 0x1.9c2d14p-1f, 0x1.886e6p-1f,  0x1.767dcep-1f};
            alignas(64) inline constexpr float log_table_logc[16] = {
                -0x1.57bf74p-2f, -0x1.2bef08p-2f, -0x1.01eae4p-2f, -0x1.b31d84p-3f, -0x1.6574ecp-3f, -0x1.1aa2bep-3f,
                -0x1.a4e764p-4f, -0x1.1973b6p-4f, -0x1.252f4p-5f,  0x0p+0f,         0x1.b42dep-5f,   0x1.c5e54cp-4f,
                0x1.526e5ep-3f,  0x1.bc286cp-3f,  0x1.1058bep-2f,  0x1.40430ap-2f};

            /**
             * log(x) for positive, normal, finite x (1.81 ulp at most); finite for any other input.
             * x = 2^k z; the top 4 mantissa bits of z pick c from a table held in registers, and
             * log z = log c + log1p(r), r = z / c - 1, |r| < 0.03, needs a polynomial of degree 2 only.
             */
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE xsimd::batch<float, A> log_normal(const xsimd::batch<float, A>& x) noexcept
            {
                using F = xsimd::batch<float, A>;
                using I = xsimd::batch<std::int32_t, A>;
                const I bits = compat::bitwise_cast<std::int32_t>(x);
                const I shifted = bits - I(0x3f330000);
                const I k = shifted >> 23;
                const F z = compat::bitwise_cast<float>(bits - (shifted & I(std::int32_t(0xff800000u))));
                // vpermps reads the low 4 bits of each index: the top 4 bits of z's mantissa.
                const __m512i index = _mm512_srli_epi32(shifted, 19);
                const F invc = _mm512_permutexvar_ps(index, _mm512_load_ps(log_table_invc));
                const F logc = _mm512_permutexvar_ps(index, _mm512_load_ps(log_table_logc));
                // r = z / c - 1 needs the single rounding of a fused multiply-add.
                const F r = compat::fma(z, invc, F(-1.f));
                const F q = compat::fma(compat::fma(F(-0x1.001cc8p-2f), r, F(0x1.5577dep-2f)), r, F(-0x1p-1f));
                return compat::fma(xsimd::to_float(k), F(0x1.62e43p-1f), logc) + compat::fma(r * r, q, r);
            }

            // The double log's table: as log_table_invc and log_table_logc, in double
            // (scripts/fit_fast_math.py, print_double_log_table).
            alignas(64) inline constexpr double log_table_invc_d[16] = {0x1.661ec6a5122f9p+0, 0x1.571ed3c506b3ap+0,
                                                                        0x1.49539e3b2d067p+0, 0x1.3c995a47babe7p+0,
                                                                        0x1.30d190130d190p+0, 0x1.25e22708092f1p+0,
                                                                        0x1.1bb4a4046ed29p+0, 0x1.12358e75d3033p+0,
                                                                        0x1.0953f39010954p+0, 0x1p+0,
                                                                        0x1.e573ac901e574p-1, 0x1.ca4b3055ee191p-1,
                                                                        0x1.b2036406c80d9p-1, 0x1.9c2d14ee4a102p-1,
                                                                        0x1.886e5f0abb04ap-1, 0x1.767dce434a9b1p-1};
            alignas(64) inline constexpr double log_table_logc_d[16] = {-0x1.57bf753c8d1fbp-2, -0x1.2bef07cdc9355p-2,
                                                                        -0x1.01eae5626c691p-2, -0x1.b31d8575bce3bp-3,
                                                                        -0x1.6574ebe8c1339p-3, -0x1.1aa2b7e23f729p-3,
                                                                        -0x1.a4e7640b1bc38p-4, -0x1.1973bd1465561p-4,
                                                                        -0x1.252f32f8d1840p-5, 0x0p+0,
                                                                        0x1.b42dd711971b9p-5,  0x1.c5e548f5bc743p-4,
                                                                        0x1.526e5e3a1b438p-3,  0x1.bc286742d8cd4p-3,
                                                                        0x1.1058bf9ae4ad4p-2,  0x1.404308686a7e4p-2};

            /**
             * log(x) for positive, normal, finite double x; finite for any other input. The float
             * table log's method with a 16-entry double table in two registers (vpermt2pd) and
             * log1p(r) = r + r^2 Q(r), Q of degree 8 (|r| < 0.0297), no division.
             */
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE xsimd::batch<double, A> log_normal(const xsimd::batch<double, A>& x) noexcept
            {
                using D = xsimd::batch<double, A>;
                const __m512i bits = _mm512_castpd_si512(x);
                const __m512i shifted = _mm512_sub_epi64(bits, _mm512_set1_epi64(0x3fe6600000000000));
                const __m512i k = _mm512_srai_epi64(shifted, 52);
                const D z = _mm512_castsi512_pd(_mm512_sub_epi64(
                    bits, _mm512_and_si512(shifted, _mm512_set1_epi64(std::int64_t(0xfff0000000000000u)))));
                // vpermt2pd reads the low 4 bits of each index: the top 4 bits of z's mantissa.
                const __m512i index = _mm512_srli_epi64(shifted, 48);
                const D invc = _mm512_permutex2var_pd(_mm512_load_pd(log_table_invc_d), index,
                                                      _mm512_load_pd(log_table_invc_d + 8));
                const D logc = _mm512_permutex2var_pd(_mm512_load_pd(log_table_logc_d), index,
                                                      _mm512_load_pd(log_table_logc_d + 8));
                const D r = compat::fma(z, invc, D(-1.));
                D q = D(-0x1.9a46666e40ebap-4);
                q = compat::fma(q, r, D(0x1.c7d8f37095435p-4));
                q = compat::fma(q, r, D(-0x1.ffffe2dccdcf6p-4));
                q = compat::fma(q, r, D(0x1.2492393fff194p-3));
                q = compat::fma(q, r, D(-0x1.555555563e34bp-3));
                q = compat::fma(q, r, D(0x1.9999999a97a33p-3));
                q = compat::fma(q, r, D(-0x1.fffffffffffc1p-3));
                q = compat::fma(q, r, D(0x1.5555555555533p-2));
                q = compat::fma(q, r, D(-0.5));
                const D kd = _mm512_cvtepi64_pd(k);
                return compat::fma(kd, D(0x1.62e42fefa39efp-1), logc) + compat::fma(r * r, q, r);
            }

            /// Whether every lane of t is a positive normal number or a zero, and every lane of x is finite.
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE bool kl_plain_lanes(const xsimd::batch<float, A>& x, const xsimd::batch<float, A>& t) noexcept
            {
                // fpclass categories: 0x01 QNaN, 0x08 +inf, 0x10 -inf, 0x20 subnormal, 0x40 negative, 0x80 SNaN.
                return _kortestz_mask16_u8(_mm512_fpclass_ps_mask(t, 0xF9), _mm512_fpclass_ps_mask(x, 0x99));
            }

            /// The same for double lanes.
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE bool kl_plain_lanes(const xsimd::batch<double, A>& x,
                                             const xsimd::batch<double, A>& t) noexcept
            {
                return _kortestz_mask8_u8(_mm512_fpclass_pd_mask(t, 0xF9), _mm512_fpclass_pd_mask(x, 0x99));
            }
#endif
#endif

            /// The log the kernels use: fast_log for float batches, xsimd's or the C library's otherwise.
            template <class B>
            inline B kernel_log(const B& x) noexcept
            {
                return log(x);
            }

            /// The exp the kernels use: the C library's for scalars, xsimd's for batches.
            template <class B>
            inline B kernel_exp(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp without kernel_exp's range fixes: the C library's for scalars, xsimd's for batches (below).
            template <class B>
            inline B raw_exp(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp of a shifted logit (at most 0, or NaN): the C library's for scalars, xsimd's for batches.
            template <class B>
            inline B softmax_exp(const B& x) noexcept
            {
                return exp(x);
            }

            /// exp of an argument of a normal result, or -inf: the C library's for scalars.
            template <class B>
            inline B plain_exp(const B& x) noexcept
            {
                return exp(x);
            }

#if XLOSS_USE_SIMD
            /**
             * xsimd's exp. On x86 without SSE4.1, xsimd rounds with (x + 2^23) - 2^23, which -ffast-math
             * lets the compiler fold to x (clang does: a distillation loss off by 26 times); there,
             * built with -ffast-math, the C library's exp per lane instead.
             */
            template <class T, class A>
            inline xsimd::batch<T, A> raw_exp(const xsimd::batch<T, A>& x) noexcept
            {
#if defined(__FAST_MATH__) && (defined(__x86_64__) || defined(_M_X64)) && !defined(__SSE4_1__)
                alignas(64) T lanes[xsimd::batch<T, A>::size];
                x.store_aligned(lanes);
                for (T& v : lanes)
                {
                    v = std::exp(v);
                }
                return xsimd::batch<T, A>::load_aligned(lanes);
#else
                return xsimd::exp(x);
#endif
            }

            /// xsimd 8.1's exp flushes results below the smallest normal number to 0 (exp(-88.5f) is
            /// 3.6e-39, a subnormal) and overflows a little before the largest finite result
            /// (exp(709.75) is 1.6e308): such arguments are shifted by 64 ln 2 towards 0 and the
            /// result scaled back by a power of 2, exactly, so both ends come out as the C library's.
            template <class T, class A>
            inline xsimd::batch<T, A> kernel_exp(const xsimd::batch<T, A>& x) noexcept
            {
                using F = xsimd::batch<T, A>;
                const T shift = T(44.3614195558364998); // 64 ln 2
                const auto low = x < F(std::log(std::numeric_limits<T>::min()));
                const auto high = x > F(std::log(std::numeric_limits<T>::max()) - 1);
                const F e = raw_exp(x + xsimd::select(low, F(shift), xsimd::select(high, F(-shift), F(0))));
                // NaN kept NaN: under -ffast-math, clang's build of xsimd's exp gives 0 for it.
                return xsimd::select(is_nan(x), x,
                                     e * xsimd::select(low, F(T(0x1p-64)), xsimd::select(high, F(T(0x1p64)), F(1))));
            }

            /// Without kernel_exp's range fixes, which a softmax numerator does not need (a result
            /// below the smallest normal number adds nothing next to the row's maximum, exp(0) = 1).
            template <class T, class A>
            inline xsimd::batch<T, A> softmax_exp(const xsimd::batch<T, A>& x) noexcept
            {
                return xsimd::select(is_nan(x), x, raw_exp(x));
            }

            /// For float, exp_normal where every lane is within exp_plain_limit of 0 or -inf (a masked
            /// class, 0): the lanes of a row's shifted logits within 86 of its maximum and of its
            /// log-probabilities, all of them but in rare rows.
            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> softmax_exp(const xsimd::batch<float, A>& x) noexcept
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
                return xsimd::select(is_nan(x), x, raw_exp(x));
            }

            /// exp where every lane of x is a normal result's argument or -inf (plain_exp_lanes):
            /// exp_normal for float (a -inf lane gives NaN, which the callers select away).
            template <class T, class A>
            inline xsimd::batch<T, A> plain_exp(const xsimd::batch<T, A>& x) noexcept
            {
                return raw_exp(x);
            }

            template <class A>
            XLOSS_INLINE xsimd::batch<float, A> plain_exp(const xsimd::batch<float, A>& x) noexcept
            {
                return exp_normal(x);
            }

            template <class A>
            inline xsimd::batch<float, A> kernel_log(const xsimd::batch<float, A>& x) noexcept
            {
                return fast_log(x);
            }

            /// xsimd 8.1's double log is wrong for subnormals (it gives about log(4.9e-324) for all of
            /// them): scale them into the normal range first (2^52), and take 52 ln 2 off.
            template <class A>
            inline xsimd::batch<double, A> kernel_log(const xsimd::batch<double, A>& x) noexcept
            {
                using F = xsimd::batch<double, A>;
                const auto subnormal = (x < F(std::numeric_limits<double>::min())) & (x > F(0.));
                const F y = xsimd::log(xsimd::select(subnormal, x * F(0x1p52), x));
                return log_special_values(x, xsimd::select(subnormal, y - F(0x1.205966f2b4f12p+5), y));
            }

#endif

            /// log(x) for x in [1, 2] or NaN (a log-sum-exp's log(1 + e^(lo - hi))): kernel_log, or the
            /// table log where AVX-512DQ has it, NaN kept.
            template <class B>
            inline B log_one_to_two(const B& x) noexcept
            {
                return kernel_log(x);
            }

#if XLOSS_USE_SIMD && (defined(__x86_64__) || defined(_M_X64))
            template <class T, class A, if_avx512dq<A> = 0>
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
