/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_SOFTMAX_HPP
#define XLOSS_DETAIL_KERNELS_SOFTMAX_HPP

// Row kernels for the losses over logits, over one contiguous row (core/rows.hpp
// lays rows out): its max, and sums of exponentials accumulated in batches
// folded into double. The max-subtraction keeps them stable for logits of any
// size; -inf (masked) logits contribute 0.

#include <algorithm>
#include <cstddef>
#include <limits>

#include "arch.hpp"
#include "batch_loops.hpp"
#include "classify.hpp"
#include "fast_math.hpp"
#include "simd.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Batch b of row p of length n, padded with `pad` past the end.
            template <class B>
            inline B load_row(const value_type_t<B>* p, std::size_t i, std::size_t n, value_type_t<B> pad) noexcept
            {
                return i + batch_traits<B>::size <= n ? batch_traits<B>::load(p + i) : load_tail<B>(p, i, n, pad);
            }

            /// Calls f(i, count) for each batch of a row of n elements (the last may be partial). Always
            /// inlined: out of line, the sums f adds to live behind its captures, in memory (a load and
            /// a store of each accumulator per batch).
            template <class B, class F>
            XLOSS_INLINE void for_each_batch(std::size_t n, F&& f)
            {
                constexpr std::size_t lanes = batch_traits<B>::size;
                for (std::size_t i = 0; i < n; i += lanes)
                {
                    f(i, std::min(lanes, n - i));
                }
            }

            /// Sums of batches in B lanes, folded into a double every 16 batches: accurate for long rows.
            template <class B>
            class row_sum
            {
            public:

                XLOSS_INLINE void add(const B& v) noexcept
                {
                    m_acc += v;
                    if (++m_count == 16)
                    {
                        flush();
                    }
                }

                double total() noexcept
                {
                    flush();
                    return m_total;
                }

            private:

                void flush() noexcept
                {
                    m_total += static_cast<double>(batch_traits<B>::hsum(m_acc));
                    m_acc = B(0);
                    m_count = 0;
                }

                B m_acc = B(0);
                int m_count = 0;
                double m_total = 0.;
            };

            /// The largest element of a row that is not NaN (-inf for a row of -inf); a NaN then
            /// reaches the row's sums through exp. (A max that kept whichever operand was NaN would
            /// forget it again at the next element, and could end at -inf on a row holding numbers.)
            template <class B>
            inline value_type_t<B> row_max(const value_type_t<B>* p, std::size_t n) noexcept
            {
                using T = value_type_t<B>;
                constexpr std::size_t lanes = batch_traits<B>::size;
                constexpr T lowest = -std::numeric_limits<T>::infinity();
                const auto step = [](const B& m, const B& v) XLOSS_INLINE_LAMBDA
                {
                    return max_skip_nan(m, v);
                };
                // Four running maxima: one would wait on each max's latency.
                B m0(lowest), m1(lowest), m2(lowest), m3(lowest);
                std::size_t i = 0;
                for (; i + 4 * lanes <= n; i += 4 * lanes)
                {
                    m0 = step(m0, batch_traits<B>::load(p + i));
                    m1 = step(m1, batch_traits<B>::load(p + i + lanes));
                    m2 = step(m2, batch_traits<B>::load(p + i + 2 * lanes));
                    m3 = step(m3, batch_traits<B>::load(p + i + 3 * lanes));
                }
                for (; i < n; i += lanes)
                {
                    m0 = step(m0, load_row<B>(p, i, n, lowest));
                }
                const B m = max(max(m0, m1), max(m2, m3)); // no NaN among them
                alignas(64) T all[lanes];
                batch_traits<B>::store(all, m);
                return *std::max_element(std::begin(all), std::end(all));
            }

            /// The smallest finite element of a row (+inf when it has none): with the row's max, the
            /// spread its shifted logits span.
            template <class B>
            inline value_type_t<B> row_min_finite(const value_type_t<B>* p, std::size_t n) noexcept
            {
                using T = value_type_t<B>;
                constexpr T inf = std::numeric_limits<T>::infinity();
                B m(inf);
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t) XLOSS_INLINE_LAMBDA
                                  {
                                      const B v = load_row<B>(p, i, n, inf);
                                      m = min(m, select(is_finite(v), v, B(inf)));
                                  });
                alignas(64) T all[batch_traits<B>::size];
                batch_traits<B>::store(all, m);
                return *std::min_element(std::begin(all), std::end(all));
            }

            /**
             * Whether the shifted, scaled logits (x - m) / T of a row of n values whose max is `m` leave
             * the value type's range: its log-probabilities are then not representable (a finite logit
             * would read as a masked one). x - m rounds to a finite value whenever m is below half the
             * largest value's ulp, so with T >= 1 only a row with such a max is scanned.
             */
            template <class B>
            inline bool row_spread_overflows(const value_type_t<B>* p, std::size_t n, value_type_t<B> m,
                                             double temperature) noexcept
            {
                using T = value_type_t<B>;
                constexpr T largest = std::numeric_limits<T>::max();
                constexpr T safe_max = largest * (std::numeric_limits<T>::epsilon() / 4);
                if (!is_finite(m) || (temperature >= 1. && m < safe_max))
                {
                    return false;
                }
                const T lo = row_min_finite<B>(p, n);
                return (static_cast<double>(m) - static_cast<double>(lo)) / temperature > static_cast<double>(largest);
            }

            /// log(sum(exp(p[i] - shift))) + shift: the log-sum-exp of a row whose max is `shift`.
            template <class B>
            inline double row_logsumexp(const value_type_t<B>* p, std::size_t n, value_type_t<B> shift) noexcept
            {
                using T = value_type_t<B>;
                row_sum<B> sum;
                const B m(shift);
                for_each_batch<B>(
                    n,
                    [&](std::size_t i, std::size_t)
                    {
                        sum.add(exp_nonpositive(load_row<B>(p, i, n, -std::numeric_limits<T>::infinity()) - m));
                    });
                return std::log(sum.total()) + static_cast<double>(shift);
            }

            /// out[i] = p[i] - lse over a row (out may be p).
            template <class B>
            inline void row_subtract(const value_type_t<B>* p, value_type_t<B>* out, std::size_t n,
                                     value_type_t<B> lse) noexcept
            {
                const B l(lse);
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t count)
                                  {
                                      store_lanes(out + i, load_row<B>(p, i, n, 0) - l, count);
                                  });
            }
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
