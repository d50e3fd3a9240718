/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_BATCH_LOOPS_HPP
#define XLOSS_DETAIL_KERNELS_BATCH_LOOPS_HPP

// Fused single-pass loops over contiguous arrays: a sum of a pointwise op and an
// elementwise map. Both run the whole array, tail included, through the same
// batch arithmetic (the tail in a padded batch), so a result never depends on
// where an element sits, and feeding the same data in chunks whose length is a
// multiple of block_sum::block gives bit-identical results.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "arch.hpp"
#include "simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// A scalar that an op receives in every lane (the reduced losses' gradient).
            template <class T>
            struct scalar_arg
            {
                T value;
            };

            template <class B, class T>
            inline B load_arg(const T* p, std::size_t i) noexcept
            {
                return batch_traits<B>::load(p + i);
            }

            template <class B, class T>
            inline B load_arg(scalar_arg<T> s, std::size_t /*i*/) noexcept
            {
                return B(s.value);
            }

            /// Elements [i, n) of p, n - i < size, in a batch padded with `pad`: one masked load where the
            /// instruction set has it (masked_lanes: masked-off lanes are not read), a copy through the stack
            /// elsewhere.
            template <class B, class T>
            inline B load_tail(const T* p, std::size_t i, std::size_t n, T pad) noexcept
            {
                if constexpr (batch_traits<B>::size == 1)
                {
                    return B(pad); // a batch of one lane has no partial batch: nothing to read
                }
                if constexpr (masked_lanes<B>::value)
                {
                    return masked_lanes<B>::load(p + i, n - i, pad);
                }
                alignas(64) T buf[batch_traits<B>::size];
                std::fill(std::begin(buf), std::end(buf), pad);
                std::copy(p + i, p + n, buf);
                return batch_traits<B>::load(buf);
            }

            template <class B, class T>
            inline B load_tail(scalar_arg<T> s, std::size_t, std::size_t, T) noexcept
            {
                return B(s.value);
            }

            /// The last n - i < size elements as a batch; padding lanes see x = 0, t = 1, g = 0.
            template <class B, class Op, class X, class Y, class G>
            inline B apply_tail(Op op, const X& x, const Y& t, const G& g, std::size_t i, std::size_t n) noexcept
            {
                using T = value_type_t<B>;
                return op(load_tail<B>(x, i, n, T(0)), load_tail<B>(t, i, n, T(1)), load_tail<B>(g, i, n, T(0)));
            }

            /// A block_sum::add side effect that does nothing.
            struct no_side
            {
                template <class B>
                void operator()(const B&, const B&, const B&, std::size_t, std::size_t) const noexcept
                {
                }
            };

            /// Stores the first `count` lanes of v at p.
            template <class B>
            inline void store_lanes(value_type_t<B>* p, const B& v, std::size_t count) noexcept
            {
                if (count == batch_traits<B>::size)
                {
                    batch_traits<B>::store(p, v);
                    return;
                }
                if constexpr (batch_traits<B>::size == 1)
                {
                    return; // count is 0
                }
                if constexpr (masked_lanes<B>::value)
                {
                    masked_lanes<B>::store(p, v, count);
                    return;
                }
                alignas(64) value_type_t<B> buf[batch_traits<B>::size];
                batch_traits<B>::store(buf, v);
                std::copy(buf, buf + count, p);
            }

            /**
             * Accurate running sum of op(x, t, g) over arrays fed in one or more calls.
             *
             * The terms are added in batches into `unroll` accumulators of type B; every
             * `rounds` batches per accumulator (one block) the accumulators are folded
             * and added into a double. Each term thus passes through at most
             * rounds + log2(unroll) + log2(lanes) additions in T before reaching double:
             * about 10 in float, which bounds the relative error by 10 * 2^-24 of the
             * sum of absolute values, whatever the length.
             */
            template <class B>
            class block_sum
            {
            public:

                using value_type = value_type_t<B>;
                static constexpr std::size_t lanes = batch_traits<B>::size;
                static constexpr std::size_t unroll = 4;
                static constexpr std::size_t rounds = 4;
                static constexpr std::size_t block = lanes * unroll * rounds;

                /**
                 * Adds op(x[i], t[i], g[i]) for i in [0, n); g is a pointer or a scalar_arg. For each
                 * batch, side(x, t, g, i, count) sees the batches loaded for elements [i, i + count):
                 * a fused pass writes its gradients there, from the same loads.
                 */
                template <class Op, class G, class Side = no_side>
                void add(Op op, const value_type* x, const value_type* t, G g, std::size_t n, Side side = {}) noexcept;

                double total() const noexcept
                {
                    return m_total;
                }

            private:

                void fold(const B& a0, const B& a1, const B& a2, const B& a3) noexcept
                {
                    m_total += static_cast<double>(batch_traits<B>::hsum((a0 + a1) + (a2 + a3)));
                }

                void flush(B (&acc)[unroll]) noexcept
                {
                    fold(acc[0], acc[1], acc[2], acc[3]);
                }

                double m_total = 0.;
            };

            template <class B>
            template <class Op, class G, class Side>
            inline void block_sum<B>::add(Op op, const value_type* x, const value_type* t, G g, std::size_t n,
                                          Side side) noexcept
            {
                // One batch: its term, and the side effect from the same loads.
                auto term = [&](std::size_t j) XLOSS_INLINE_LAMBDA
                {
                    if constexpr (std::is_same<Side, no_side>::value)
                    {
                        return op(load_arg<B>(x, j), load_arg<B>(t, j), load_arg<B>(g, j));
                    }
                    else
                    {
                        const B xb = load_arg<B>(x, j);
                        const B tb = load_arg<B>(t, j);
                        const B gb = load_arg<B>(g, j);
                        side(xb, tb, gb, j, lanes);
                        return op(xb, tb, gb);
                    }
                };
                std::size_t i = 0;
                for (; i + block <= n; i += block)
                {
                    // Four accumulators by name, not an array: with a branch in op (a fast path and
                    // the exact one) the compiler kept an array on the stack, a store per batch.
                    B a0(0), a1(0), a2(0), a3(0);
                    for (std::size_t r = 0; r < rounds; ++r)
                    {
                        const std::size_t j = i + r * unroll * lanes;
                        a0 += term(j);
                        a1 += term(j + lanes);
                        a2 += term(j + 2 * lanes);
                        a3 += term(j + 3 * lanes);
                    }
                    fold(a0, a1, a2, a3);
                }
                if (i == n)
                {
                    return;
                }
                // Less than a block left: the same batch-to-accumulator pattern, then one flush.
                B acc[unroll] = {B(0), B(0), B(0), B(0)};
                std::size_t k = 0;
                for (; i + lanes <= n; i += lanes, ++k)
                {
                    acc[k % unroll] += term(i);
                }
                if constexpr (lanes > 1) // batches of one lane leave no tail
                {
                    if (i < n)
                    {
                        // The last n - i < lanes elements, padded with x = 0, t = 1, g = 0, padding lanes zeroed.
                        const B xb = load_tail<B>(x, i, n, value_type(0));
                        const B tb = load_tail<B>(t, i, n, value_type(1));
                        const B gb = load_tail<B>(g, i, n, value_type(0));
                        alignas(64) value_type lanes_buf[lanes];
                        batch_traits<B>::store(lanes_buf, op(xb, tb, gb));
                        std::fill(lanes_buf + (n - i), lanes_buf + lanes, value_type(0));
                        acc[k % unroll] += batch_traits<B>::load(lanes_buf);
                        side(xb, tb, gb, i, n - i);
                    }
                }
                flush(acc);
            }

            /// out[i] = op(x[i], t[i], g[i]) for i in [0, n); g is a pointer or a scalar_arg.
            template <class B, class Op, class G>
            inline void map(Op op, const value_type_t<B>* x, const value_type_t<B>* t, G g, value_type_t<B>* out,
                            std::size_t n) noexcept
            {
                constexpr std::size_t lanes = batch_traits<B>::size;
                std::size_t i = 0;
                for (; i + lanes <= n; i += lanes)
                {
                    batch_traits<B>::store(out + i, op(load_arg<B>(x, i), load_arg<B>(t, i), load_arg<B>(g, i)));
                }
                if (i < n)
                {
                    store_lanes(out + i, apply_tail<B>(op, x, t, g, i, n), n - i);
                }
            }
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
