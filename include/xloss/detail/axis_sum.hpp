/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_AXIS_SUM_HPP
#define XLOSS_DETAIL_AXIS_SUM_HPP

// Sums over a set of axes of a contiguous row-major array, accumulated in double: what broadcast
// gradients and per-axis reductions need. xloss does not use xtensor's reducers for its own work:
// xtensor 0.24's immediate xt::sum writes out of bounds on empty arrays, and fails to compile or
// crashes in C++20.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "expression.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * Sums of `full` (row-major, contiguous) over `axes`, in double; the reduced axes are kept with
             * length 1 (keep_dims) or dropped. An empty array gives zeros of the reduced shape.
             */
            template <class E>
            inline xt::xarray<double> sum_axes(const E& full, const std::vector<std::size_t>& axes, bool keep_dims)
            {
                const std::size_t rank = full.dimension();
                shape_type kept_shape(rank); // the result's shape with reduced axes as 1
                shape_type out_shape;
                for (std::size_t d = 0; d < rank; ++d)
                {
                    const bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
                    kept_shape[d] = reduced ? 1 : full.shape()[d];
                    if (!reduced || keep_dims)
                    {
                        out_shape.push_back(kept_shape[d]);
                    }
                }
                xt::xarray<double> out(out_shape, 0.);
                const std::size_t n = full.size();
                if (n == 0)
                {
                    return out;
                }
                // The result's stride along each axis of `full`: 0 along the reduced ones.
                shape_type out_strides(rank, 0);
                for (std::size_t d = rank, stride = 1; d-- > 0;)
                {
                    out_strides[d] = kept_shape[d] == 1 ? 0 : stride;
                    stride *= kept_shape[d];
                }
                const std::size_t inner = rank == 0 ? 1 : full.shape()[rank - 1];
                const std::size_t inner_stride = rank == 0 ? 0 : out_strides[rank - 1];
                const auto* data = full.data();
                double* acc = out.data();
                // Rows along the last axis, their start in the result followed with an odometer over the others.
                shape_type index(rank, 0);
                std::size_t base = 0;
                for (std::size_t row = 0; row < n / inner; ++row)
                {
                    const auto* p = data + row * inner;
                    if (inner_stride == 0)
                    {
                        double s = 0.;
                        for (std::size_t j = 0; j < inner; ++j)
                        {
                            s += static_cast<double>(p[j]);
                        }
                        acc[base] += s;
                    }
                    else
                    {
                        for (std::size_t j = 0; j < inner; ++j)
                        {
                            acc[base + j] += static_cast<double>(p[j]);
                        }
                    }
                    for (std::size_t d = rank > 0 ? rank - 1 : 0; d-- > 0;)
                    {
                        base += out_strides[d];
                        if (++index[d] < full.shape()[d])
                        {
                            break;
                        }
                        base -= out_strides[d] * index[d];
                        index[d] = 0;
                    }
                }
                return out;
            }
        }
    }
}

#endif
