/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_COMPAT_HPP
#define XLOSS_COMPAT_HPP

/// @file
/// The one place where xloss bridges the versions of its dependencies; no other header tests a
/// version. Supported and tested: xtensor 0.24 to 0.27 and xsimd 8.1 to 14.
///
/// | difference                 | xtensor 0.24, 0.25 / xsimd 8, 9      | xtensor 0.26+ / xsimd 10+             |
/// |----------------------------|--------------------------------------|---------------------------------------|
/// | header layout              | `<xtensor/xarray.hpp>`               | `<xtensor/containers/xarray.hpp>`     |
/// | horizontal sum             | `xsimd::hadd`                        | `xsimd::reduce_add`                   |
/// | `bitwise_cast<To>`         | `To` is a batch type                 | `To` is an element type               |
/// | fused multiply-add, AVX-512| a multiply and an add (xsimd 8)      | `vfmadd` (xsimd 10+)                  |
/// | the CPU's instruction sets | `available_architectures().best`     | `available_architectures().has(A{})`  |
/// | integer mask to float mask | `xsimd::bool_cast` (xsimd 8)         | `xsimd::batch_bool_cast` (xsimd 9+)   |
///
/// xsimd 13 and 14 also renamed the AVX-512 architectures past `avx512bw` (`avx512vnni<...>`); xloss
/// keys its AVX-512 code on the `avx512f` / `avx512dq` bases, which every version derives them from.

#include <type_traits>

#define XLOSS_STRINGIFY_IMPL(...) #__VA_ARGS__
#define XLOSS_STRINGIFY(...) XLOSS_STRINGIFY_IMPL(__VA_ARGS__)

/// `#include XLOSS_XTENSOR_HEADER(role, file)` includes xtensor's `file` under either layout: in the
/// folder of its role with xtensor 0.26+ (`containers`, `core`, `views`, `io`, `generators`, `misc`,
/// `reducers`, `utils`), at the top with earlier versions. (A string, not `<...>`: the space after
/// the comma would be part of a `<...>` name.)
// Spaces around the slashes would end up in the file name:
// clang-format off
#if __has_include(<xtensor/containers/xarray.hpp>)
// Parenthesised, the arguments would be part of the file name:
// NOLINTNEXTLINE(bugprone-macro-parentheses)
#define XLOSS_XTENSOR_HEADER(role, file) XLOSS_STRINGIFY(xtensor/role/file)
#else
// NOLINTNEXTLINE(bugprone-macro-parentheses)
#define XLOSS_XTENSOR_HEADER(role, file) XLOSS_STRINGIFY(xtensor/file)
#endif
// clang-format on

/// Around xloss's SIMD code: GCC 12 warns that its own AVX-512 intrinsics read an uninitialised
/// variable once inlined (GCC bug 105593: the self-initialised `__Y` of `_mm512_undefined_*`). GCC
/// honours a diagnostic pragma anywhere on the inlining chain, so the warning stays inside xloss
/// and no user needs a flag.
#if defined(__GNUC__) && !defined(__clang__)
#define XLOSS_SIMD_DIAGNOSTICS_BEGIN                                                                                   \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")                         \
        _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define XLOSS_SIMD_DIAGNOSTICS_END _Pragma("GCC diagnostic pop")
#else
#define XLOSS_SIMD_DIAGNOSTICS_BEGIN
#define XLOSS_SIMD_DIAGNOSTICS_END
#endif

// Included here first, inside the region, so that the intrinsics' own lines are covered too when
// xsimd's functions are not inlined into xloss's (xsimd's exp).
XLOSS_SIMD_DIAGNOSTICS_BEGIN
#include <xsimd/xsimd.hpp>
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
#include <immintrin.h>
#endif
XLOSS_SIMD_DIAGNOSTICS_END

#if defined(XSIMD_VERSION_MAJOR) && XSIMD_VERSION_MAJOR < 10
#define XLOSS_XSIMD_BEFORE_10 1
#else
#define XLOSS_XSIMD_BEFORE_10 0
#endif

namespace xloss
{
    namespace compat
    {
#if !defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
        /// The sum of a batch's lanes.
        template <class T, class A>
        inline T reduce_add(const xsimd::batch<T, A>& v) noexcept
        {
#if XLOSS_XSIMD_BEFORE_10
            return xsimd::hadd(v);
#else
            return xsimd::reduce_add(v);
#endif
        }

        /// Whether the running CPU (and OS) supports the xsimd architecture A.
        template <class A>
        inline bool cpu_has() noexcept
        {
#if XLOSS_XSIMD_BEFORE_10
            return xsimd::available_architectures().best >= A::version();
#else
            return xsimd::available_architectures().has(A{});
#endif
        }

        /// The bits of `v` as a batch of `To` (same architecture, same width).
        template <class To, class T, class A>
        inline xsimd::batch<To, A> bitwise_cast(const xsimd::batch<T, A>& v) noexcept
        {
#if XLOSS_XSIMD_BEFORE_10
            return xsimd::bitwise_cast<xsimd::batch<To, A>>(v);
#else
            return xsimd::bitwise_cast<To>(v);
#endif
        }

        /// A lane mask of integers as the mask of the floating-point type of the same width.
        template <class To, class T, class A>
        inline xsimd::batch_bool<To, A> mask_cast(const xsimd::batch_bool<T, A>& m) noexcept
        {
#if defined(XSIMD_VERSION_MAJOR) && XSIMD_VERSION_MAJOR < 9
            static_assert(sizeof(To) == sizeof(T), "xsimd 8 casts masks between types of one width only");
            return xsimd::bool_cast(m);
#else
            return xsimd::batch_bool_cast<To>(m);
#endif
        }

        /// a * b + c with one rounding wherever the instruction set has one (xsimd 8's AVX-512 fma is a
        /// multiply and an add, fused only when the compiler contracts them: not at -O0, nor under
        /// sanitizers).
        template <class T, class A>
        inline xsimd::batch<T, A> fma(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b,
                                      const xsimd::batch<T, A>& c) noexcept
        {
#if XLOSS_XSIMD_BEFORE_10 && (defined(__x86_64__) || defined(_M_X64))
            if constexpr (std::is_base_of<xsimd::avx512f, A>::value)
            {
                if constexpr (std::is_same<T, float>::value)
                {
                    return _mm512_fmadd_ps(a, b, c);
                }
                else
                {
                    return _mm512_fmadd_pd(a, b, c);
                }
            }
            else
#endif
            {
                return xsimd::fma(a, b, c);
            }
        }
#endif
    }
}

#endif
