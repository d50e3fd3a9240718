/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_LINEAR_BLAS_HPP
#define XLOSS_DETAIL_LINEAR_BLAS_HPP

// The matrix products of the fused linear losses, on the system's CBLAS (cblas_sgemm, cblas_dgemm):
// row-major matrices, sizes checked against BLAS's int.

#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

#include <cblas.h>

#include "../core/error.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// A matrix as stored, or its transpose.
            enum class matrix_op
            {
                plain,
                transposed
            };

            /// A row-major matrix operand: its data, its row stride and how the product reads it.
            template <class V>
            struct matrix_ref
            {
                const V* data;
                std::size_t stride;
                matrix_op op = matrix_op::plain;
            };

            /// The extent of one product: c (m x n) = alpha a (m x k) b (k x n) + beta c.
            struct gemm_size
            {
                std::size_t m;
                std::size_t n;
                std::size_t k;
            };

            inline int blas_int(std::size_t n, const char* func)
            {
                if (n > static_cast<std::size_t>(INT_MAX))
                {
                    detail::raise(std::length_error(std::string("xloss::") + func + ": a matrix extent of "
                                                    + std::to_string(n) + " exceeds the BLAS's int"));
                }
                return static_cast<int>(n);
            }

            inline CBLAS_TRANSPOSE blas_op(matrix_op op) noexcept
            {
                return op == matrix_op::plain ? CblasNoTrans : CblasTrans;
            }

            /// c = alpha op(a) op(b) + beta c, c of row stride ldc.
            template <class V>
            void gemm(gemm_size s, V alpha, matrix_ref<V> a, matrix_ref<V> b, V beta, V* c, std::size_t ldc,
                      const char* func)
            {
                const int m = blas_int(s.m, func), n = blas_int(s.n, func), k = blas_int(s.k, func);
                const int lda = blas_int(a.stride, func), ldb = blas_int(b.stride, func), ldc_ = blas_int(ldc, func);
                if constexpr (sizeof(V) == sizeof(float))
                {
                    cblas_sgemm(CblasRowMajor, blas_op(a.op), blas_op(b.op), m, n, k, alpha, a.data, lda, b.data, ldb,
                                beta, c, ldc_);
                }
                else
                {
                    cblas_dgemm(CblasRowMajor, blas_op(a.op), blas_op(b.op), m, n, k, alpha, a.data, lda, b.data, ldb,
                                beta, c, ldc_);
                }
            }
        }
    }
}

#endif
