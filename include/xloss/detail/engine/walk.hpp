/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_WALK_HPP
#define XLOSS_DETAIL_ENGINE_WALK_HPP

// The chunked walk of the pointwise engine: it hands any expression (views, transposes,
// broadcasts, lazy functions, mixed types) to the kernels. Contiguous row-major data of the
// right type is read in place; anything else is copied chunk by chunk into stack buffers.
// Sums are taken over fixed partitions, so they do not depend on the number of threads.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)

#include "../core/expression.hpp"
#include "../kernels/batch_loops.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
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
