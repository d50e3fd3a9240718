/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_EXPRESSION_HPP
#define XLOSS_DETAIL_CORE_EXPRESSION_HPP

// From xtensor expressions to the flat arrays the kernels read: value types,
// broadcast shapes and their error messages, and the chunked walk that hands
// any expression (views, transposes, broadcasts, lazy functions, mixed types)
// to the kernels. Contiguous row-major data of the right type is handed over
// in place; anything else is copied chunk by chunk into stack buffers.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xstorage.hpp)
#include XLOSS_XTENSOR_HEADER(utils, xutils.hpp)

#include "../../float16.hpp"
#include "error.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            using shape_type = xt::svector<std::size_t, 4>;

            template <class T>
            struct is_loss_value
                : std::integral_constant<bool, std::is_same<T, float>::value || std::is_same<T, double>::value>
            {
            };

            /// Fails to compile, with the reason, unless every T is float or double.
            template <class... T>
            constexpr bool require_loss_values() noexcept
            {
                constexpr bool supported = (is_loss_value<std::decay_t<T>>::value && ...);
                static_assert(supported,
                              "xloss: losses take float or double elements; integral, long double and complex "
                              "element types are not supported (convert with xt::cast<double>(e))");
                return supported;
            }

            /**
             * The promoted value type of the arguments: float, or double as soon as one is double.
             * Other element types fail require_loss_values, once: the type is then float, so that the
             * rest of the call still instantiates and the assertion is the only error printed. (The
             * assertion sits in a function, whose failure leaves this class valid: clang would
             * otherwise read `type` of the failed class as int.)
             */
            template <class... T>
            struct loss_value
            {
                using type =
                    std::conditional_t<require_loss_values<T...>(), std::common_type_t<std::decay_t<T>...>, float>;
            };

            template <class... E>
            using loss_value_t = typename loss_value<typename E::value_type...>::type;

            /// Whether T is a value a scalar output or grad_output may be: arithmetic, or a 16-bit float.
            template <class T>
            struct is_scalar_value : std::integral_constant<bool, std::is_arithmetic<T>::value || is_float16<T>::value>
            {
            };

            /**
             * The value type of the row losses' arguments (cross_entropy and the divergences from logits),
             * which also read the 16-bit types: bfloat16 or half when every argument is of that type;
             * else as loss_value, a 16-bit argument counting as float.
             */
            template <class First, class... T>
            struct row_value
            {
                using type = std::conditional_t<
                    is_float16<std::decay_t<First>>::value
                        && (std::is_same<std::decay_t<First>, std::decay_t<T>>::value && ...),
                    std::decay_t<First>,
                    typename loss_value<std::conditional_t<is_float16<std::decay_t<First>>::value, float, First>,
                                        std::conditional_t<is_float16<std::decay_t<T>>::value, float, T>...>::type>;
            };

            template <class... E>
            using row_value_t = typename row_value<typename E::value_type...>::type;

            template <class S>
            inline shape_type to_shape(const S& s)
            {
                return shape_type(s.begin(), s.end());
            }

            /// "(2, 3)"; a 0-d shape is "()".
            template <class S>
            inline std::string shape_to_string(const S& s)
            {
                std::string r = "(";
                for (std::size_t i = 0; i < s.size(); ++i)
                {
                    r += (i ? ", " : "") + std::to_string(s[i]);
                }
                return r + ")";
            }

            inline std::size_t size_of(const shape_type& s)
            {
                std::size_t n = 1;
                for (std::size_t d : s)
                {
                    n *= d;
                }
                return n;
            }

            /// NumPy broadcast of two shapes; throws std::invalid_argument naming both.
            inline shape_type broadcast_shapes(const shape_type& a, const shape_type& b, const char* func,
                                               const char* name_a, const char* name_b)
            {
                shape_type r(std::max(a.size(), b.size()), 1);
                for (std::size_t i = 0; i < r.size(); ++i)
                {
                    const std::size_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
                    const std::size_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
                    if (da != db && da != 1 && db != 1)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": " + name_a + " of shape "
                                                            + shape_to_string(a) + " and " + name_b + " of shape "
                                                            + shape_to_string(b) + " cannot be broadcast together"));
                    }
                    r[r.size() - 1 - i] = da == 1 ? db : da;
                }
                return r;
            }

            /// Whether shape s broadcasts to `to` without changing it.
            inline bool broadcasts_to(const shape_type& s, const shape_type& to)
            {
                if (s.size() > to.size())
                {
                    return false;
                }
                for (std::size_t i = 0; i < s.size(); ++i)
                {
                    const std::size_t d = s[s.size() - 1 - i];
                    if (d != 1 && d != to[to.size() - 1 - i])
                    {
                        return false;
                    }
                }
                return true;
            }

            /// A pointer to e's elements when they are of type V, contiguous and row-major; else nullptr.
            template <class V, class E>
            inline const V* contiguous_data(const E& e)
            {
                if constexpr (xt::has_data_interface<E>::value && std::is_same<typename E::value_type, V>::value)
                {
                    const auto& shape = e.shape();
                    const auto& strides = e.strides();
                    std::ptrdiff_t expected = 1;
                    for (std::size_t i = shape.size(); i-- > 0;)
                    {
                        if (shape[i] != 1 && static_cast<std::ptrdiff_t>(strides[i]) != expected)
                        {
                            return nullptr;
                        }
                        expected *= static_cast<std::ptrdiff_t>(shape[i]);
                    }
                    return e.data() + e.data_offset();
                }
                else
                {
                    (void)e;
                    return nullptr;
                }
            }

            /// The data of e in place when it has the broadcast shape and is contiguous, else nullptr.
            template <class V, class E>
            inline const V* in_place(const E& e, const shape_type& shape)
            {
                const auto& s = e.shape();
                return s.size() == shape.size() && std::equal(shape.begin(), shape.end(), s.begin())
                           ? contiguous_data<V>(e)
                           : nullptr;
            }

            /// An expression as contiguous row-major data of V: in place, or a copy.
            template <class V>
            struct contiguous_array
            {
                std::optional<xt::xarray<V>> copy; ///< only when e is not contiguous (an empty xarray allocates)
                const V* data;

                template <class E>
                explicit contiguous_array(const E& e)
                    : data(contiguous_data<V>(e))
                {
                    if (!data)
                    {
                        copy.emplace(e);
                        data = copy->data();
                    }
                }
            };

            /// Values already laid out in the broadcast shape, row-major: a walk over these reads pointers only.
            template <class V>
            struct contiguous_ref
            {
                const V* data;
            };

            template <class T>
            struct is_contiguous_ref : std::false_type
            {
            };

            template <class V>
            struct is_contiguous_ref<contiguous_ref<V>> : std::true_type
            {
            };

            /// e in the broadcast shape, row-major: in place when it already is, else evaluated into `buffer`.
            template <class V, class E>
            inline contiguous_ref<V> as_contiguous(const E& e, const shape_type& shape, xt::xarray<V>& buffer)
            {
                if (const V* p = in_place<V>(e, shape))
                {
                    return {p};
                }
                buffer = xt::broadcast(xt::cast<V>(e), shape);
                return {buffer.data()};
            }

        }
    }
}

#endif
