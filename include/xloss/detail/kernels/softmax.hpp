/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_KERNELS_SOFTMAX_HPP
#define XLOSS_DETAIL_KERNELS_SOFTMAX_HPP

// Row kernels for the losses over logits: rows along any axis of contiguous
// row-major data (a strided row is gathered into a row of scratch), their max,
// and sums of exponentials accumulated in batches folded into double. The
// max-subtraction keeps them stable for logits of any size; -inf (masked)
// logits contribute 0.

#include <algorithm>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/rows.hpp"
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

            /// Calls f(i, count) for each batch of a row of n elements (the last may be partial).
            template <class B, class F>
            inline void for_each_batch(std::size_t n, F&& f)
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
                constexpr T lowest = -std::numeric_limits<T>::infinity();
                B m(lowest);
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t)
                                  {
                                      const B v = load_row<B>(p, i, n, lowest);
                                      m = select(is_nan(v), m, max(m, v));
                                  });
                alignas(64) T lanes[batch_traits<B>::size];
                batch_traits<B>::store(lanes, m);
                return *std::max_element(std::begin(lanes), std::end(lanes));
            }

            /// log(sum(exp(p[i] - shift))) + shift: the log-sum-exp of a row whose max is `shift`.
            template <class B>
            inline double row_logsumexp(const value_type_t<B>* p, std::size_t n, value_type_t<B> shift) noexcept
            {
                using T = value_type_t<B>;
                row_sum<B> sum;
                const B m(shift);
                for_each_batch<B>(n,
                                  [&](std::size_t i, std::size_t)
                                  {
                                      sum.add(
                                          softmax_exp(load_row<B>(p, i, n, -std::numeric_limits<T>::infinity()) - m));
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
