/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_ARCH_X86_AVX512_HPP
#define XLOSS_DETAIL_KERNELS_ARCH_X86_AVX512_HPP

// The kernels' hooks (../arch.hpp) on AVX-512: masked loads and stores of partial batches
// (AVX-512F), and with AVX-512DQ the table logs (in-register 16-entry tables, a short polynomial)
// and one-instruction classification. Included by ../arch.hpp only, on every x86 build: only a
// translation unit compiled for AVX-512 instantiates them. The coefficients and tables come from
// scripts/fit_fast_math.py; tests/test_fast_math.cpp measures the logs (fast_math.hpp's table).

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <immintrin.h>

#include "../arch.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            template <class A>
            using if_avx512dq = std::enable_if_t<std::is_base_of<xsimd::avx512dq, A>::value, int>;

            /// Partial batches by lane mask: masked-off lanes are neither read nor written.
            template <class T, class A>
            struct masked_lanes<xsimd::batch<T, A>, std::enable_if_t<std::is_base_of<xsimd::avx512f, A>::value>>
                : std::true_type
            {
                using B = xsimd::batch<T, A>;

                static B load(const T* p, std::size_t count, T pad) noexcept
                {
                    const unsigned mask = (1u << count) - 1u;
                    if constexpr (std::is_same<T, float>::value)
                    {
                        return _mm512_mask_loadu_ps(_mm512_set1_ps(pad), static_cast<__mmask16>(mask), p);
                    }
                    else
                    {
                        return _mm512_mask_loadu_pd(_mm512_set1_pd(pad), static_cast<__mmask8>(mask), p);
                    }
                }

                static void store(T* p, const B& v, std::size_t count) noexcept
                {
                    const unsigned mask = (1u << count) - 1u;
                    if constexpr (std::is_same<T, float>::value)
                    {
                        _mm512_mask_storeu_ps(p, static_cast<__mmask16>(mask), v);
                    }
                    else
                    {
                        _mm512_mask_storeu_pd(p, static_cast<__mmask8>(mask), v);
                    }
                }
            };

            template <class T, class A>
            struct table_log<xsimd::batch<T, A>, std::enable_if_t<std::is_base_of<xsimd::avx512dq, A>::value>>
                : std::true_type
            {
            };

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

            /// Whether every lane of x is finite and every lane of t a positive normal number or a zero:
            /// two fpclass tests.
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE bool finite_and_normal_or_zero(const xsimd::batch<float, A>& x,
                                                        const xsimd::batch<float, A>& t) noexcept
            {
                // fpclass categories: 0x01 QNaN, 0x08 +inf, 0x10 -inf, 0x20 subnormal, 0x40 negative, 0x80 SNaN.
                return _kortestz_mask16_u8(_mm512_fpclass_ps_mask(t, 0xF9), _mm512_fpclass_ps_mask(x, 0x99));
            }

            /// The same for double lanes.
            template <class A, if_avx512dq<A> = 0>
            XLOSS_INLINE bool finite_and_normal_or_zero(const xsimd::batch<double, A>& x,
                                                        const xsimd::batch<double, A>& t) noexcept
            {
                return _kortestz_mask8_u8(_mm512_fpclass_pd_mask(t, 0xF9), _mm512_fpclass_pd_mask(x, 0x99));
            }
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
