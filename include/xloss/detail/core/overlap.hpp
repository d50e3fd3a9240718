/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_OVERLAP_HPP
#define XLOSS_DETAIL_CORE_OVERLAP_HPP

// Whether an output the caller gave may share memory with what an expression reads. A pass that
// writes while it reads (in chunks, or in several loops) computes wrong values then, so the `_out`
// calls compute such outputs aside first. The expression tree is walked: containers, adaptors and
// views with a data interface read their storage, functions their arguments, broadcasts and views
// their expression, scalars nothing; any other node is assumed to read anything.

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xscalar.hpp)
#include XLOSS_XTENSOR_HEADER(utils, xutils.hpp)

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Bytes [begin, end) of memory.
            struct memory_span
            {
                std::uintptr_t begin = 0;
                std::uintptr_t end = 0;

                template <class V>
                static memory_span of(const V* p, std::size_t n) noexcept
                {
                    const auto b = reinterpret_cast<std::uintptr_t>(p);
                    return p && n ? memory_span{b, b + n * sizeof(V)} : memory_span{};
                }

                bool empty() const noexcept
                {
                    return begin == end;
                }

                bool meets(const memory_span& o) const noexcept
                {
                    return !empty() && !o.empty() && begin < o.end && o.begin < end;
                }
            };

            template <class E, class = void>
            struct has_arguments : std::false_type
            {
            };

            template <class E>
            struct has_arguments<E, std::void_t<decltype(std::declval<const E&>().arguments())>> : std::true_type
            {
            };

            template <class E, class = void>
            struct has_inner_expression : std::false_type
            {
            };

            template <class E>
            struct has_inner_expression<E, std::void_t<decltype(std::declval<const E&>().expression())>>
                : std::true_type
            {
            };

            /// Whether evaluating e may read memory in `span`.
            template <class E>
            inline bool may_read(const E& e, const memory_span& span)
            {
                using D = std::decay_t<E>;
                if (span.empty())
                {
                    return false;
                }
                if constexpr (std::is_arithmetic<D>::value || xt::is_xscalar<D>::value)
                {
                    (void)e;
                    return false;
                }
                else if constexpr (xt::has_data_interface<D>::value)
                {
                    // The whole storage: a view may reach any of it.
                    return memory_span::of(e.storage().data(), e.storage().size()).meets(span);
                }
                else if constexpr (has_arguments<D>::value)
                {
                    return std::apply([&](const auto&... a) { return (false || ... || may_read(a, span)); },
                                      e.arguments());
                }
                else if constexpr (has_inner_expression<D>::value)
                {
                    return may_read(e.expression(), span);
                }
                else
                {
                    (void)e;
                    return true;
                }
            }

            /// Whether writing n values of V from p may change what any of `inputs` reads.
            template <class V, class... E>
            inline bool overlaps_inputs(const V* p, std::size_t n, const E&... inputs)
            {
                const memory_span span = memory_span::of(p, n);
                return (false || ... || may_read(inputs, span));
            }
        }
    }
}

#endif
