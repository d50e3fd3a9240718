/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_OUTPUT_HPP
#define XLOSS_DETAIL_CORE_OUTPUT_HPP

// Writing into outputs the caller provides: in place when they are contiguous of the loss's
// value type, else computed aside and assigned; their shapes are checked before anything is written.

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)

#include "../kernels/convert.hpp"
#include "error.hpp"
#include "expression.hpp"
#include "options_check.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// e's elements to write in place, when contiguous row-major of type V; else nullptr.
            template <class V, class E>
            inline V* writable_data(E& e)
            {
                return const_cast<V*>(contiguous_data<V>(e));
            }

            /// Whether xtensor's assignment resizes an output of type E to a shape of `rank` axes: any
            /// rank for xt::xarray, N for xt::xtensor<T, N>; never for fixed shapes, views, adaptors.
            template <class E>
            struct resizable
            {
                static constexpr bool value = false;

                static constexpr bool to_rank(std::size_t) noexcept
                {
                    return false;
                }
            };

            template <class EC, xt::layout_type L, class SC, class Tag>
            struct resizable<xt::xarray_container<EC, L, SC, Tag>>
            {
                static constexpr bool value = true;

                static constexpr bool to_rank(std::size_t) noexcept
                {
                    return true;
                }
            };

            template <class EC, std::size_t N, xt::layout_type L, class Tag>
            struct resizable<xt::xtensor_container<EC, N, L, Tag>>
            {
                static constexpr bool value = true;

                static constexpr bool to_rank(std::size_t rank) noexcept
                {
                    return rank == N;
                }
            };

            /**
             * Checks a caller's output against the shape it will hold. Returns true when it has that shape;
             * false when it has another but xtensor's assignment would resize it (an xt::xarray, an
             * xt::xtensor of that rank), which assign_out then does; throws for any other output.
             */
            template <class E>
            inline bool check_out_shape(const E& out, const shape_type& expected, const char* func, const char* name,
                                        const char* expected_what)
            {
                const shape_type got = to_shape(out.shape());
                if (got == expected)
                {
                    return true;
                }
                if (resizable<E>::to_rank(expected.size()))
                {
                    return false;
                }
                detail::raise(shape_error(func, name, got, expected_what, expected));
            }

            /// The shape of `result` as O's shape type (a fixed-rank output's std::array filled element by
            /// element: GCC 14 warns that xtl's copy of a shape into one may write past its end).
            template <class O, class R>
            inline typename O::shape_type shape_like(const R& result)
            {
                auto shape = xtl::make_sequence<typename O::shape_type>(result.dimension(), std::size_t(0));
                for (std::size_t d = 0; d < shape.size(); ++d)
                {
                    shape[d] = static_cast<typename O::shape_type::value_type>(result.shape()[d]);
                }
                return shape;
            }

            /// Writes a result computed aside into a caller's output (its shape checked before, or resized
            /// here when check_out_shape allowed it), in row-major order, whatever the output's layout.
            template <class O, class R>
            inline void assign_out(O& out, const R& result)
            {
                if constexpr (resizable<O>::value)
                {
                    if (!std::equal(result.shape().begin(), result.shape().end(), out.shape().begin(),
                                    out.shape().end()))
                    {
                        // GCC 12 sees a null destination in xtensor's copy of an empty (0-d) shape.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"
#endif
                        out.resize(shape_like<O>(result));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
                    }
                }
                // As many elements as the output holds (the shapes agree): GCC 14 cannot bound a copy of
                // the result's length into a fixed-rank output, and warns.
                std::copy_n(result.cbegin(), out.size(), out.begin());
            }

            /**
             * Checks a caller's loss output against the loss's shape: a float or double variable
             * needs a 0-d loss; a container, as check_out_shape() (whose result it returns).
             */
            template <class L>
            inline bool check_loss_out(const L& loss, const shape_type& loss_shape, const char* func, const char* name)
            {
                if constexpr (is_scalar_value<L>::value)
                {
                    static_assert(!std::is_integral<L>::value,
                                  "xloss: a scalar loss output must be float, double, bfloat16 or half");
                    if (!loss_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": " + name
                                                            + " is a scalar, but the loss has shape "
                                                            + shape_to_string(loss_shape)));
                    }
                    return true;
                }
                else
                {
                    return check_out_shape(loss, loss_shape, func, name, "the loss's shape");
                }
            }

            /// Writes a reduced loss into a caller's output: a variable, or a 0-d container (an
            /// xt::xarray of another shape is resized, as check_loss_out() allowed).
            template <class L>
            inline void store_loss(L& loss, double value)
            {
                if constexpr (is_scalar_value<L>::value)
                {
                    loss = stored_as<L>(value);
                }
                else
                {
                    using T = typename L::value_type;
                    if (loss.dimension() != 0)
                    {
                        xt::xarray<T> r = xt::xarray<T>::from_shape({});
                        r() = stored_as<T>(value);
                        assign_out(loss, r); // resizes (check_loss_out let only resizable outputs through)
                        return;
                    }
                    loss() = stored_as<T>(value);
                }
            }

            /// Assigns a loss computed aside (an array) to a caller's output.
            template <class L, class R>
            inline void assign_loss(L& loss, const R& result)
            {
                if constexpr (is_scalar_value<L>::value)
                {
                    loss = static_cast<L>(result());
                }
                else
                {
                    assign_out(loss, result);
                }
            }
        }
    }
}

#endif
