/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_CONFIG_HPP
#define XLOSS_CONFIG_HPP

/// @file
/// Version and build configuration of xloss.

#define XLOSS_VERSION_MAJOR 0 ///< xloss's major version
#define XLOSS_VERSION_MINOR 2 ///< xloss's minor version
#define XLOSS_VERSION_PATCH 0 ///< xloss's patch version

#include "compat.hpp"

/// XLOSS_USE_SIMD is 1 when xsimd offers an instruction set for this translation
/// unit. Define XLOSS_NO_SIMD on the command line (never in a header) to force
/// the scalar kernels; every translation unit of a program must agree on it.
#if defined(XLOSS_NO_SIMD) || defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
#define XLOSS_USE_SIMD 0
#else
#define XLOSS_USE_SIMD 1
#endif

// Everything in xloss whose machine code depends on how a translation unit is compiled lives in an
// inline namespace named after it: the instruction set the compiler targets, the kernels (SIMD, or
// scalar with XLOSS_NO_SIMD) and OpenMP. Translation units built with different -m flags (a baseline
// one beside an AVX-512 one, as runtime dispatch has them) thus link distinct copies, and each runs
// its own: the linker cannot hand the baseline caller the AVX-512 copy of an inline function.
// The enumerations and the options classes stay outside: types that one translation unit passes to
// another, whose member functions are trivial. (xtensor's and the standard library's inline functions
// are shared between such translation units all the same: compile only kernels on raw pointers with
// wider flags, as examples/dispatch does.)
#if defined(__AVX512BW__)
#define XLOSS_ISA avx512bw
#elif defined(__AVX512F__)
#define XLOSS_ISA avx512f
#elif defined(__AVX2__) && defined(__FMA__)
#define XLOSS_ISA fma3_avx2
#elif defined(__AVX2__)
#define XLOSS_ISA avx2
#elif defined(__AVX__)
#define XLOSS_ISA avx
#elif defined(__SSE4_2__)
#define XLOSS_ISA sse4_2
#elif defined(__SSE4_1__)
#define XLOSS_ISA sse4_1
#elif defined(__SSSE3__)
#define XLOSS_ISA ssse3
#elif defined(__SSE3__)
#define XLOSS_ISA sse3
#elif defined(__SSE2__)
#define XLOSS_ISA sse2
#elif defined(__ARM_FEATURE_SVE)
#define XLOSS_ISA sve
#elif defined(__ARM_NEON)
#define XLOSS_ISA neon
#else
#define XLOSS_ISA generic
#endif
#if XLOSS_USE_SIMD
#define XLOSS_KERNELS simd
#else
#define XLOSS_KERNELS scalar
#endif
#ifdef _OPENMP
#define XLOSS_THREADING omp
#else
#define XLOSS_THREADING seq
#endif
// -ffast-math changes the code too (fallbacks for what it breaks, other roundings), and so does
// -ffinite-math-only alone (which lets the compiler swap a max's operands): such translation units
// get copies of their own.
#ifdef __FAST_MATH__
#define XLOSS_FLOAT_MODE _fast_math
#elif defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#define XLOSS_FLOAT_MODE _finite_math
#else
#define XLOSS_FLOAT_MODE
#endif
// F16C, which converts rows of half, comes with some flag sets of an instruction set above and not
// with others (-march=haswell has it, -mavx2 -mfma lacks it): its code gets copies of their own too.
#if defined(__F16C__)
#define XLOSS_HALF_MODE _f16c
#else
#define XLOSS_HALF_MODE
#endif
#define XLOSS_PASTE_IMPL(isa, kernels, threading, mode, half) isa##_##kernels##_##threading##mode##half
#define XLOSS_PASTE(isa, kernels, threading, mode, half) XLOSS_PASTE_IMPL(isa, kernels, threading, mode, half)
/// The inline namespace of this translation unit's xloss code, for example `avx512bw_simd_omp_f16c`
/// (`_fast_math` before `_f16c` under -ffast-math, `_finite_math` under -ffinite-math-only alone;
/// no `_f16c` without F16C).
#define XLOSS_ARCH_NAMESPACE XLOSS_PASTE(XLOSS_ISA, XLOSS_KERNELS, XLOSS_THREADING, XLOSS_FLOAT_MODE, XLOSS_HALF_MODE)

/// Small kernel helpers called from loop bodies that the compiler's inlining budget would leave as
/// calls (a batch passed through memory per element group).
#if defined(__GNUC__) || defined(__clang__)
#define XLOSS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define XLOSS_INLINE __forceinline
#else
#define XLOSS_INLINE inline
#endif

/// The same on a lambda (after its parameter list): a loop body's per-batch helper.
#if defined(__GNUC__) || defined(__clang__)
#define XLOSS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define XLOSS_INLINE_LAMBDA
#endif

/// The rare path of a kernel (special values): kept out of the loop bodies, so that their fast
/// paths stay small enough to be inlined and unrolled.
#if defined(__GNUC__) || defined(__clang__)
#define XLOSS_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define XLOSS_NOINLINE __declspec(noinline)
#else
#define XLOSS_NOINLINE
#endif

/// On a loop body: inline everything it calls (xsimd's exp included), so that no call in the
/// loop spills the vector registers. Not under Address- or ThreadSanitizer: their instrumentation
/// of the flattened bodies, with debug information, makes assembler files of many gigabytes.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define XLOSS_SANITIZED_BUILD 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define XLOSS_SANITIZED_BUILD 1
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(XLOSS_SANITIZED_BUILD)
#define XLOSS_FLATTEN __attribute__((flatten))
#else
#define XLOSS_FLATTEN
#endif

namespace xloss
{
    /**
     * @brief Whether this translation unit is compiled with OpenMP (`-fopenmp`): `num_threads(n)`
     *        with n > 1 needs it, and throws std::invalid_argument without it.
     *
     * `static`: each translation unit answers for itself.
     */
    static constexpr bool has_openmp() noexcept
    {
#ifdef _OPENMP
        return true;
#else
        return false;
#endif
    }
}

#endif
