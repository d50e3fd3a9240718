/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_CONFIG_HPP
#define XLOSS_CONFIG_HPP

/// @file
/// Version and build configuration of xloss.

#define XLOSS_VERSION_MAJOR 0
#define XLOSS_VERSION_MINOR 1
#define XLOSS_VERSION_PATCH 0

#include "compat.hpp"

// XLOSS_USE_SIMD is 1 when xsimd offers an instruction set for this translation
// unit. Define XLOSS_NO_SIMD on the command line (never in a header) to force
// the scalar kernels; every translation unit of a program must agree on it.
#if defined(XLOSS_NO_SIMD) || defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
#define XLOSS_USE_SIMD 0
#else
#define XLOSS_USE_SIMD 1
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
