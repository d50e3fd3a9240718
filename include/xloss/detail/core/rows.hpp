/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_ROWS_HPP
#define XLOSS_DETAIL_CORE_ROWS_HPP

// Rows along one axis of a contiguous row-major array, and the axis argument that names them.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.hpp"
#include "expression.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// An axis in [-ndim, ndim) as an index; throws std::invalid_argument naming it otherwise.
            inline std::size_t normalize_axis(std::ptrdiff_t axis, std::size_t ndim, const char* func, const char* name)
            {
                const auto n = static_cast<std::ptrdiff_t>(ndim);
                if (axis < -n || axis >= n)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": " + name + " "
                                                        + std::to_string(axis) + " is out of range for a tensor of "
                                                        + std::to_string(ndim) + " dimensions"));
                }
                return static_cast<std::size_t>(axis < 0 ? axis + n : axis);
            }

            /// The rows along one axis of a contiguous row-major array: row k starts at
            /// (k / inner) * length * inner + k % inner, and its elements are `inner` apart.
            struct row_layout
            {
                std::size_t rows;
                std::size_t length;
                std::size_t inner;

                row_layout(const shape_type& shape, std::size_t axis)
                    : rows(1)
                    , length(shape[axis])
                    , inner(1)
                {
                    for (std::size_t i = 0; i < shape.size(); ++i)
                    {
                        if (i < axis)
                        {
                            rows *= shape[i];
                        }
                        else if (i > axis)
                        {
                            inner *= shape[i];
                        }
                    }
                    rows *= inner;
                }

                std::size_t start(std::size_t k) const noexcept
                {
                    return (k / inner) * length * inner + k % inner;
                }

                /// Row k of data: in place when contiguous, else gathered into buf (length elements).
                template <class V>
                const V* read(const V* data, std::size_t k, V* buf) const noexcept
                {
                    const V* p = data + start(k);
                    if (inner == 1)
                    {
                        return p;
                    }
                    for (std::size_t j = 0; j < length; ++j)
                    {
                        buf[j] = p[j * inner];
                    }
                    return buf;
                }

                /// Where to write row k of data: in place when contiguous, else buf (then call scatter).
                template <class V>
                V* write(V* data, std::size_t k, V* buf) const noexcept
                {
                    return inner == 1 ? data + start(k) : buf;
                }

                /// Copies buf into row k of data, when write() returned buf.
                template <class V>
                void scatter(V* data, std::size_t k, const V* buf) const noexcept
                {
                    if (inner == 1)
                    {
                        return;
                    }
                    V* p = data + start(k);
                    for (std::size_t j = 0; j < length; ++j)
                    {
                        p[j * inner] = buf[j];
                    }
                }
            };

            /// The multi-dimensional index of row k in the rows' shape, as "(i, j)".
            inline std::string row_index(std::size_t k, const shape_type& row_shape)
            {
                std::vector<std::size_t> index(row_shape.size());
                for (std::size_t d = row_shape.size(); d-- > 0;)
                {
                    index[d] = k % row_shape[d];
                    k /= row_shape[d];
                }
                std::string s = "(";
                for (std::size_t d = 0; d < index.size(); ++d)
                {
                    s += (d ? ", " : "") + std::to_string(index[d]);
                }
                return s + ")";
            }
        }
    }
}

#endif
