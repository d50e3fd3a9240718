/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_AXIS_SUM_HPP
#define XLOSS_DETAIL_CORE_AXIS_SUM_HPP

// Sums over a set of axes of a contiguous row-major array, accumulated in double: what broadcast
// gradients and per-axis reductions need. xloss does not use xtensor's reducers for its own work:
// xtensor 0.24's immediate xt::sum writes out of bounds on empty arrays, and fails to compile or
// crashes in C++20.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "allocate.hpp"
#include "expression.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * Walks `shape` in row-major order a row (its last axis) at a time, beside an array of shape
             * `part` (same rank, 1 on the axes it is broadcast along): calls f(i, j, inner, inner_stride)
             * with the row's first element i in `shape`, its element j in `part`, the row's length and
             * the step of j along the row (0 when `part` is broadcast along the last axis).
             */
            template <class F>
            inline void for_each_broadcast_row(const shape_type& shape, const shape_type& part, F&& f)
            {
                const std::size_t rank = shape.size();
                std::size_t n = 1;
                for (std::size_t d : shape)
                {
                    n *= d;
                }
                if (n == 0)
                {
                    return;
                }
                // The stride of `part` along each axis of `shape`: 0 along the broadcast ones.
                shape_type strides(rank, 0);
                for (std::size_t d = rank, stride = 1; d-- > 0;)
                {
                    strides[d] = part[d] == 1 ? 0 : stride;
                    stride *= part[d];
                }
                const std::size_t inner = rank == 0 ? 1 : shape[rank - 1];
                const std::size_t inner_stride = rank == 0 ? 0 : strides[rank - 1];
                shape_type index(rank, 0);
                std::size_t base = 0;
                for (std::size_t row = 0; row < n / inner; ++row)
                {
                    f(row * inner, base, inner, inner_stride);
                    for (std::size_t d = rank > 0 ? rank - 1 : 0; d-- > 0;)
                    {
                        base += strides[d];
                        if (++index[d] < shape[d])
                        {
                            break;
                        }
                        base -= strides[d] * index[d];
                        index[d] = 0;
                    }
                }
            }

            /// `part` right-aligned to `rank` axes, with 1 in front (NumPy's broadcasting).
            inline shape_type aligned_shape(const shape_type& part, std::size_t rank)
            {
                shape_type r(rank - part.size(), 1);
                r.insert(r.end(), part.begin(), part.end());
                return r;
            }

            /// dst (contiguous, of `shape`) op= src (contiguous, broadcastable to `shape`), element by element.
            template <class V, class Op>
            inline void apply_broadcast(V* dst, const shape_type& shape, const V* src, const shape_type& src_shape,
                                        Op op)
            {
                for_each_broadcast_row(shape, aligned_shape(src_shape, shape.size()),
                                       [&](std::size_t i, std::size_t j, std::size_t inner, std::size_t step)
                                       {
                                           for (std::size_t k = 0; k < inner; ++k)
                                           {
                                               dst[i + k] = op(dst[i + k], src[j + k * step]);
                                           }
                                       });
            }

            /**
             * Sums of `full` (row-major, contiguous) over `axes`, accumulated in double, divided by
             * `divisor`, as V; the reduced axes are kept with length 1 (keep_dims) or dropped. An empty
             * array gives zeros of the reduced shape.
             */
            template <class V, class E>
            inline xt::xarray<V> sum_axes(const E& full, const std::vector<std::size_t>& axes, bool keep_dims,
                                          double divisor = 1.)
            {
                const std::size_t rank = full.dimension();
                const shape_type shape(full.shape().begin(), full.shape().end());
                shape_type kept_shape(rank); // the result's shape with reduced axes as 1
                shape_type out_shape;
                for (std::size_t d = 0; d < rank; ++d)
                {
                    const bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
                    kept_shape[d] = reduced ? 1 : shape[d];
                    if (!reduced || keep_dims)
                    {
                        out_shape.push_back(kept_shape[d]);
                    }
                }
                std::vector<double> acc(size_of(kept_shape), 0.);
                const auto* data = full.data();
                for_each_broadcast_row(shape, kept_shape,
                                       [&](std::size_t i, std::size_t j, std::size_t inner, std::size_t step)
                                       {
                                           const auto* p = data + i;
                                           if (step == 0)
                                           {
                                               double s = 0.;
                                               for (std::size_t k = 0; k < inner; ++k)
                                               {
                                                   s += static_cast<double>(p[k]);
                                               }
                                               acc[j] += s;
                                           }
                                           else
                                           {
                                               for (std::size_t k = 0; k < inner; ++k)
                                               {
                                                   acc[j + k * step] += static_cast<double>(p[k]);
                                               }
                                           }
                                       });
                xt::xarray<V> out = new_array<V>(out_shape);
                for (std::size_t k = 0; k < acc.size(); ++k)
                {
                    out.data()[k] = static_cast<V>(acc[k] / divisor);
                }
                return out;
            }
        }
    }
}

#endif
