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
            /// The stride of `part` (same rank, 1 on the axes it is broadcast along) along each axis of
            /// the shape it is broadcast to: 0 along the broadcast ones.
            inline shape_type broadcast_strides(const shape_type& part)
            {
                shape_type strides(part.size(), 0);
                for (std::size_t d = part.size(), stride = 1; d-- > 0;)
                {
                    strides[d] = part[d] == 1 ? 0 : stride;
                    stride *= part[d];
                }
                return strides;
            }

            /// Where a run of elements along the last axis lies in each of P arrays broadcast beside it.
            template <std::size_t P>
            struct broadcast_run
            {
                std::size_t first[P]; ///< the run's first element in each array
                std::size_t step[P];  ///< its step along the run (0 where the array is broadcast)
            };

            /**
             * Walks elements [begin, end) of `shape` in row-major order, a run along the last axis at a
             * time, beside P arrays of the same rank given by their broadcast_strides: calls
             * f(i, length, run) with the run's first element i in `shape` and where it lies in each array.
             */
            template <std::size_t P, class F>
            inline void for_each_run(const shape_type& shape, const shape_type* const (&strides)[P], std::size_t begin,
                                     std::size_t end, F&& f)
            {
                const std::size_t rank = shape.size();
                if (begin >= end)
                {
                    return;
                }
                broadcast_run<P> run{};
                shape_type index(rank, 0);
                for (std::size_t d = rank, rest = begin; d-- > 0;)
                {
                    index[d] = rest % shape[d];
                    rest /= shape[d];
                    for (std::size_t p = 0; p < P; ++p)
                    {
                        run.first[p] += index[d] * (*strides[p])[d];
                    }
                }
                if (rank == 0)
                {
                    f(begin, end - begin, run);
                    return;
                }
                const std::size_t last = rank - 1;
                for (std::size_t p = 0; p < P; ++p)
                {
                    run.step[p] = (*strides[p])[last];
                }
                for (std::size_t i = begin; i < end;)
                {
                    const std::size_t length = std::min(end - i, shape[last] - index[last]);
                    f(i, length, run);
                    i += length;
                    // Move the multi-index, and each array's element with it, by `length`.
                    index[last] += length;
                    for (std::size_t p = 0; p < P; ++p)
                    {
                        run.first[p] += length * run.step[p];
                    }
                    for (std::size_t d = last; d > 0 && index[d] == shape[d]; --d)
                    {
                        for (std::size_t p = 0; p < P; ++p)
                        {
                            run.first[p] += (*strides[p])[d - 1] - (*strides[p])[d] * index[d];
                        }
                        index[d] = 0;
                        ++index[d - 1];
                    }
                }
            }

            /**
             * Walks `shape` in row-major order a row (its last axis) at a time, beside an array of shape
             * `part` (same rank, 1 on the axes it is broadcast along): calls f(i, j, inner, inner_stride)
             * with the row's first element i in `shape`, its element j in `part`, the row's length and
             * the step of j along the row (0 when `part` is broadcast along the last axis).
             */
            template <class F>
            inline void for_each_broadcast_row(const shape_type& shape, const shape_type& part, F&& f)
            {
                const shape_type strides = broadcast_strides(part);
                const shape_type* const all[1] = {&strides};
                for_each_run(shape, all, 0, size_of(shape),
                             [&](std::size_t i, std::size_t length, const broadcast_run<1>& run)
                             {
                                 f(i, run.first[0], length, run.step[0]);
                             });
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
