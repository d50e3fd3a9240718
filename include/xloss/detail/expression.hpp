/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_EXPRESSION_HPP
#define XLOSS_DETAIL_EXPRESSION_HPP

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

#include "../compat.hpp"
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xstorage.hpp)
#include XLOSS_XTENSOR_HEADER(utils, xutils.hpp)

#include "error.hpp"
#include "kernels.hpp"

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

            /// The promoted value type of the arguments: float, or double as soon as one is double.
            template <class... T>
            struct loss_value
            {
                static_assert((is_loss_value<std::decay_t<T>>::value && ...),
                              "xloss: losses take float or double elements; integral and complex element types are "
                              "not supported (convert with xt::cast<double>(e))");
                using type = std::common_type_t<std::decay_t<T>...>;
            };

            template <class... E>
            using loss_value_t = typename loss_value<typename E::value_type...>::type;

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

            /// Elements read in place.
            template <class V>
            struct pointer_source
            {
                static constexpr bool random_access = true;
                const V* data;

                const V* chunk(V*, std::size_t offset, std::size_t) const noexcept
                {
                    return data + offset;
                }
            };

            /// Elements copied from an xtensor iterator, chunk by chunk.
            template <class V, class It>
            struct iterator_source
            {
                static constexpr bool random_access = false;
                It it;

                const V* chunk(V* buf, std::size_t, std::size_t m)
                {
                    for (std::size_t j = 0; j < m; ++j, ++it)
                    {
                        buf[j] = static_cast<V>(*it);
                    }
                    return buf;
                }
            };

            /// One value for every element.
            template <class V>
            struct scalar_source
            {
                static constexpr bool random_access = true;
                V value;

                scalar_arg<V> chunk(V*, std::size_t, std::size_t) const noexcept
                {
                    return {value};
                }
            };

            /// Chunk length of the walk: a multiple of every block_sum::block, so chunking never changes a sum.
            constexpr std::size_t chunk_size = 1024;

            /// Sums are the in-order sums of the sums of fixed partitions of this many elements, whatever
            /// the number of threads: results do not depend on it. A multiple of chunk_size.
            constexpr std::size_t partition_size = std::size_t(1) << 16;

            /// Calls f(x, t, g, m, offset) on consecutive chunks of [begin, end).
            template <class V, class SX, class ST, class SG, class F>
            inline void for_each_chunk(std::size_t begin, std::size_t end, SX& sx, ST& st, SG& sg, F&& f)
            {
                alignas(64) V xb[chunk_size];
                alignas(64) V tb[chunk_size];
                alignas(64) V gb[chunk_size];
                for (std::size_t offset = begin; offset < end; offset += chunk_size)
                {
                    const std::size_t m = std::min(chunk_size, end - offset);
                    f(sx.chunk(xb, offset, m), st.chunk(tb, offset, m), sg.chunk(gb, offset, m), m, offset);
                }
            }

            /**
             * Runs f(x, t, g, m, offset, acc) over chunks of n elements, a fresh accumulator acc per
             * partition, and returns the in-order sum of the partitions' totals. Sources that can jump
             * (pointers, scalars) let partitions run on `threads` OpenMP threads, when compiled with
             * OpenMP; the result is the same for any thread count.
             */
            template <class Acc, class V, class SX, class ST, class SG, class F>
            inline double run_partitions(std::size_t n, int threads, SX& sx, ST& st, SG& sg, F&& f)
            {
                const std::size_t parts = (n + partition_size - 1) / partition_size;
                auto partition = [&](std::size_t p, SX& px, ST& pt, SG& pg)
                {
                    Acc acc;
                    const std::size_t begin = p * partition_size;
                    for_each_chunk<V>(begin, std::min(begin + partition_size, n), px, pt, pg,
                                      [&](auto x, auto t, auto g, std::size_t m, std::size_t offset)
                                      {
                                          f(x, t, g, m, offset, acc);
                                      });
                    return acc.total();
                };
                double total = 0.;
#ifdef _OPENMP
                constexpr bool can_jump = SX::random_access && ST::random_access && SG::random_access;
                if (can_jump && threads > 1 && parts > 1)
                {
                    // Groups of partitions, so that the partial sums fit on the stack.
                    constexpr std::size_t group = 64;
                    double partial[group];
                    for (std::size_t first = 0; first < parts; first += group)
                    {
                        const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(std::min(group, parts - first));
#pragma omp parallel for schedule(static) num_threads(threads)
                        for (std::ptrdiff_t k = 0; k < count; ++k)
                        {
                            SX px = sx;
                            ST pt = st;
                            SG pg = sg;
                            partial[k] = partition(first + static_cast<std::size_t>(k), px, pt, pg);
                        }
                        for (std::ptrdiff_t k = 0; k < count; ++k)
                        {
                            total += partial[k];
                        }
                    }
                    return total;
                }
#else
                (void)threads;
#endif
                for (std::size_t p = 0; p < parts; ++p)
                {
                    total += partition(p, sx, st, sg);
                }
                return total;
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

            template <class V, class E>
            inline auto make_iterator_source(const E& broadcast)
            {
                return iterator_source<V, decltype(broadcast.cbegin())>{broadcast.cbegin()};
            }

            /**
             * walk() for expressions: run_partitions over pointers when x, t and g are contiguous in the
             * broadcast shape, over copying iterators otherwise.
             */
            template <class Acc, class V, class E1, class E2, class G, class F>
            inline double walk_expressions(const E1& x, const E2& t, const G& g, const shape_type& shape, int threads,
                                           F&& f)
            {
                const std::size_t n = size_of(shape);
                const V* px = in_place<V>(x, shape);
                const V* pt = in_place<V>(t, shape);
                pointer_source<V> sx{px}, st{pt};
                if constexpr (xt::is_xexpression<G>::value)
                {
                    const V* pg = in_place<V>(g, shape);
                    if (px && pt && pg)
                    {
                        pointer_source<V> sg{pg};
                        return run_partitions<Acc, V>(n, threads, sx, st, sg, f);
                    }
                    const auto bx = xt::broadcast(x, shape);
                    const auto bt = xt::broadcast(t, shape);
                    const auto bg = xt::broadcast(g, shape);
                    auto ix = make_iterator_source<V>(bx);
                    auto it = make_iterator_source<V>(bt);
                    auto ig = make_iterator_source<V>(bg);
                    return run_partitions<Acc, V>(n, threads, ix, it, ig, f);
                }
                else
                {
                    G sg = g;
                    if (px && pt)
                    {
                        return run_partitions<Acc, V>(n, threads, sx, st, sg, f);
                    }
                    const auto bx = xt::broadcast(x, shape);
                    const auto bt = xt::broadcast(t, shape);
                    auto ix = make_iterator_source<V>(bx);
                    auto it = make_iterator_source<V>(bt);
                    return run_partitions<Acc, V>(n, threads, ix, it, sg, f);
                }
            }

            /**
             * Walks x, t and g over the broadcast shape in row-major order: run_partitions over
             * pointers when all three are contiguous, over copying iterators otherwise. x and t are
             * xexpressions or contiguous_refs; g is a scalar_source, a contiguous_ref or an xexpression
             * broadcastable to shape. Only pointers are walked when x, t and g are refs or scalars.
             */
            template <class Acc, class V, class E1, class E2, class G, class F>
            inline double walk(const E1& x, const E2& t, const G& g, const shape_type& shape, int threads, F&& f)
            {
                const std::size_t n = size_of(shape);
                if constexpr (is_contiguous_ref<E1>::value && is_contiguous_ref<E2>::value)
                {
                    pointer_source<V> sx{x.data}, st{t.data};
                    if constexpr (is_contiguous_ref<G>::value)
                    {
                        pointer_source<V> sg{g.data};
                        return run_partitions<Acc, V>(n, threads, sx, st, sg, f);
                    }
                    else
                    {
                        G sg = g;
                        return run_partitions<Acc, V>(n, threads, sx, st, sg, f);
                    }
                }
                else
                {
                    return walk_expressions<Acc, V>(x, t, g, shape, threads, f);
                }
            }
        }
    }
}

#endif
