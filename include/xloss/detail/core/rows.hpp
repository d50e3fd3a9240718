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
#include <type_traits>
#include <vector>

#include "../kernels/convert.hpp"
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

                /// Whether row k of data of S is read and written in place as V (else through a buffer).
                template <class S, class V>
                bool in_place() const noexcept
                {
                    return inner == 1 && std::is_same<S, V>::value;
                }

                /// Row k of data as V: in place when contiguous and of type V, else gathered and converted
                /// into buf (length elements).
                template <class S, class V>
                const V* read(const S* data, std::size_t k, V* buf) const noexcept
                {
                    const S* p = data + start(k);
                    if constexpr (std::is_same<S, V>::value)
                    {
                        if (inner == 1)
                        {
                            return p;
                        }
                    }
                    widen_row(p, inner, length, buf);
                    return buf;
                }

                /// Where to write row k of data: in place when contiguous and of type V, else buf (then
                /// call scatter).
                template <class S, class V>
                V* write(S* data, std::size_t k, V* buf) const noexcept
                {
                    if constexpr (std::is_same<S, V>::value)
                    {
                        if (inner == 1)
                        {
                            return data + start(k);
                        }
                    }
                    return buf;
                }

                /// Copies (converts) buf into row k of data, when write() returned buf.
                template <class S, class V>
                void scatter(S* data, std::size_t k, const V* buf) const noexcept
                {
                    if (in_place<S, V>())
                    {
                        return;
                    }
                    narrow_row(buf, length, data + start(k), inner);
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
