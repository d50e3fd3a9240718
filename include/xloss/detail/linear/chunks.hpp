/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_LINEAR_CHUNKS_HPP
#define XLOSS_DETAIL_LINEAR_CHUNKS_HPP

// The linear layer of a fused linear loss, a chunk of rows at a time: the chunk's hidden states
// (gathered when its rows are not consecutive), its logits h W^T + b, and from the gradient of its
// logits G the gradients G W (hidden states), G^T h (weight) and the column sums of G (bias). Only
// the rows a loss keeps are in a chunk: ignored rows never enter a product.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../../fused_linear_options.hpp"
#include "../core/labels.hpp"
#include "../engine/row_groups.hpp"
#include "blas.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The kept rows of labels (their label not ignore_index), ascending, into `kept`.
            template <class LV>
            void collect_kept_rows(const LV* labels, std::size_t rows, long long ignore_index,
                                   std::vector<std::size_t>& kept)
            {
                const keep_labels<LV> keep{labels, ignore_index};
                for (std::size_t k = 0; k < rows; ++k)
                {
                    if (keep(k))
                    {
                        kept.push_back(k);
                    }
                }
            }

            /// Hidden states (rows x hidden) and an output layer (classes x hidden; bias or null).
            template <class V>
            struct linear_input
            {
                const V* hidden;
                std::size_t rows;
                std::size_t hidden_size;
                const V* weight;
                const V* bias;
                std::size_t classes;
            };

            /// Where the layer's gradients go (null: not wanted), and whether they are added.
            template <class V>
            struct linear_gradients
            {
                V* hidden = nullptr;
                V* weight = nullptr;
                V* bias = nullptr;
                gradient_write write = gradient_write::overwrite;

                bool wanted() const noexcept
                {
                    return hidden || weight || bias;
                }
            };

            /// A chunk's scratch: its hidden states and their gradient (rows x hidden), its logits and
            /// their gradient (rows x classes), its rows' losses and labels.
            template <class V>
            struct chunk_buffers
            {
                V* hidden;
                V* grad_hidden;
                V* logits;
                V* grad_logits;
                V* loss;
                long long* labels;
            };

            /// The scratch of fused linear calls, kept between them: it allocates only when a call
            /// needs more than any before it.
            template <class V>
            class linear_workspace
            {
            public:

                /// The bytes it holds.
                std::size_t bytes() const noexcept
                {
                    return (m_values.capacity() + m_teacher.capacity()) * sizeof(V)
                           + m_rows.capacity() * sizeof(std::size_t)
                           + (m_labels.capacity() + m_ids.capacity()) * sizeof(long long) + m_seen.capacity();
                }

                /// The list of kept rows, emptied.
                std::vector<std::size_t>& kept_rows() noexcept
                {
                    m_rows.clear();
                    return m_rows;
                }

                /// Buffers for chunks of `chunk` rows.
                chunk_buffers<V> buffers(std::size_t chunk, std::size_t hidden, std::size_t classes)
                {
                    const std::size_t h = chunk * hidden, z = chunk * classes;
                    grow(m_values, 2 * h + 2 * z + chunk);
                    grow(m_labels, chunk);
                    V* p = m_values.data();
                    return {p, p + h, p + 2 * h, p + 2 * h + z, p + 2 * h + 2 * z, m_labels.data()};
                }

                /// A teacher's chunk: n values.
                V* teacher_values(std::size_t n)
                {
                    grow(m_teacher, n);
                    return m_teacher.data();
                }

                /// A top-k teacher's chunk: (rows x k) ids.
                long long* teacher_ids(std::size_t values)
                {
                    grow(m_ids, values);
                    return m_ids.data();
                }

                /// One byte per class, for the checks of a top-k teacher's ids.
                std::vector<unsigned char>& seen() noexcept
                {
                    return m_seen;
                }

                row_workspace<V>& rows() noexcept
                {
                    return m_row_scratch;
                }

            private:

                template <class T>
                static void grow(std::vector<T>& v, std::size_t n)
                {
                    if (v.size() < n)
                    {
                        v.resize(n);
                    }
                }

                std::vector<V> m_values;
                std::vector<V> m_teacher;
                std::vector<std::size_t> m_rows;
                std::vector<long long> m_labels;
                std::vector<long long> m_ids;
                std::vector<unsigned char> m_seen;
                row_workspace<V> m_row_scratch;
            };

            /// The rows per chunk: the options' chunk_rows, else as many as workspace_bytes holds
            /// (`extra`: values per row beside the student's, a teacher's chunk).
            template <class V>
            std::size_t chunk_rows(const fused_linear_options& options, std::size_t hidden, std::size_t classes,
                                   std::size_t extra = 0)
            {
                if (options.chunk_rows() > 0)
                {
                    return options.chunk_rows();
                }
                const std::size_t per_row = (2 * hidden + 2 * classes + 1 + extra) * sizeof(V) + sizeof(long long);
                return std::max<std::size_t>(1, options.workspace_bytes() / per_row);
            }

            /// The layer over the kept rows `kept` (ascending), in chunks of `chunk` of them.
            template <class V>
            class linear_chunks
            {
            public:

                linear_chunks(const linear_input<V>& in, const std::vector<std::size_t>& kept, std::size_t chunk,
                              const char* func) noexcept
                    : m_in(in)
                    , m_kept(kept)
                    , m_chunk(std::max<std::size_t>(1, std::min(chunk, kept.size())))
                    , m_func(func)
                {
                }

                /// The rows per chunk (at most the kept rows).
                std::size_t chunk() const noexcept
                {
                    return m_chunk;
                }

                std::size_t count() const noexcept
                {
                    return (m_kept.size() + m_chunk - 1) / m_chunk;
                }

                /// Chunk c's positions in the kept rows.
                row_range range(std::size_t c) const noexcept
                {
                    return {c * m_chunk, std::min(m_kept.size(), (c + 1) * m_chunk)};
                }

                /// The caller's row of each position.
                const std::size_t* row_ids(row_range r) const noexcept
                {
                    return m_kept.data() + r.first;
                }

                /// The chunk's hidden states as (rows x hidden): in place when consecutive, else gathered.
                const V* hidden(row_range r, V* buf) const
                {
                    const std::size_t h = m_in.hidden_size;
                    if (consecutive(r))
                    {
                        return m_in.hidden + m_kept[r.first] * h;
                    }
                    for (std::size_t i = r.first; i < r.last; ++i)
                    {
                        std::copy_n(m_in.hidden + m_kept[i] * h, h, buf + (i - r.first) * h);
                    }
                    return buf;
                }

                /// logits = hidden W^T + b, (rows x classes).
                void logits(const V* hidden, std::size_t rows, V* logits) const
                {
                    const std::size_t v = m_in.classes;
                    if (m_in.bias)
                    {
                        for (std::size_t i = 0; i < rows; ++i)
                        {
                            std::copy_n(m_in.bias, v, logits + i * v);
                        }
                    }
                    gemm<V>({rows, v, m_in.hidden_size}, V(1), {hidden, m_in.hidden_size},
                            {m_in.weight, m_in.hidden_size, matrix_op::transposed}, m_in.bias ? V(1) : V(0), logits, v,
                            m_func);
                }

                /// Overwriting: zeroes what no chunk writes (ignored rows' hidden gradients, the bias's
                /// gradient that chunks add to, the weight's when no row is kept).
                void clear(const linear_gradients<V>& out) const
                {
                    if (out.write != gradient_write::overwrite)
                    {
                        return;
                    }
                    const std::size_t h = m_in.hidden_size;
                    if (out.hidden)
                    {
                        std::size_t next = 0;
                        for (std::size_t k = 0; k < m_in.rows; ++k)
                        {
                            if (next < m_kept.size() && m_kept[next] == k)
                            {
                                ++next;
                            }
                            else
                            {
                                std::fill_n(out.hidden + k * h, h, V(0));
                            }
                        }
                    }
                    if (out.bias)
                    {
                        std::fill_n(out.bias, m_in.classes, V(0));
                    }
                    if (out.weight && m_kept.empty())
                    {
                        std::fill_n(out.weight, m_in.classes * h, V(0));
                    }
                }

                /// Adds chunk r's share to the gradients, from its logits' gradient `grad` (rows x
                /// classes) and its hidden states; `buf` holds the hidden gradient of rows not consecutive.
                void backward(const V* grad, const V* hidden, row_range r, const linear_gradients<V>& out, V* buf) const
                {
                    const std::size_t rows = r.last - r.first, h = m_in.hidden_size, v = m_in.classes;
                    const bool add = out.write == gradient_write::accumulate;
                    if (out.hidden)
                    {
                        const bool direct = consecutive(r);
                        V* dst = direct ? out.hidden + m_kept[r.first] * h : buf;
                        gemm<V>({rows, h, v}, V(1), {grad, v}, {m_in.weight, h}, direct && add ? V(1) : V(0), dst, h,
                                m_func);
                        if (!direct)
                        {
                            scatter_hidden(buf, r, out.hidden, add);
                        }
                    }
                    if (out.weight)
                    {
                        const bool first = r.first == 0;
                        gemm<V>({v, h, rows}, V(1), {grad, v, matrix_op::transposed}, {hidden, h},
                                first && !add ? V(0) : V(1), out.weight, h, m_func);
                    }
                    if (out.bias)
                    {
                        for (std::size_t i = 0; i < rows; ++i)
                        {
                            const V* g = grad + i * v;
                            for (std::size_t j = 0; j < v; ++j)
                            {
                                out.bias[j] += g[j];
                            }
                        }
                    }
                }

                /**
                 * Runs every chunk: its logits into buf.logits, then `losses(r)`, which writes the
                 * chunk's rows' losses into buf.loss and, when gradients are wanted, their logits'
                 * gradient into buf.grad_logits, and returns their sum; the rows' losses go to `loss`
                 * (null: not wanted; ignored rows 0), the gradients to `grads`. Returns the sum.
                 */
                template <class F>
                double run(const chunk_buffers<V>& buf, V* loss, const linear_gradients<V>& grads, F&& losses) const
                {
                    if (loss)
                    {
                        std::fill_n(loss, m_in.rows, V(0));
                    }
                    clear(grads);
                    double sum = 0.;
                    for (std::size_t c = 0; c < count(); ++c)
                    {
                        const row_range r = range(c);
                        const V* h = hidden(r, buf.hidden);
                        logits(h, r.last - r.first, buf.logits);
                        sum += losses(r);
                        for (std::size_t i = r.first; loss && i < r.last; ++i)
                        {
                            loss[m_kept[i]] = buf.loss[i - r.first];
                        }
                        if (grads.wanted())
                        {
                            backward(buf.grad_logits, h, r, grads, buf.grad_hidden);
                        }
                    }
                    return sum;
                }

            private:

                bool consecutive(row_range r) const noexcept
                {
                    return m_kept[r.last - 1] - m_kept[r.first] == r.last - 1 - r.first;
                }

                void scatter_hidden(const V* buf, row_range r, V* hidden, bool add) const
                {
                    const std::size_t h = m_in.hidden_size;
                    for (std::size_t i = r.first; i < r.last; ++i)
                    {
                        const V* src = buf + (i - r.first) * h;
                        V* dst = hidden + m_kept[i] * h;
                        for (std::size_t j = 0; j < h; ++j)
                        {
                            dst[j] = add ? dst[j] + src[j] : src[j];
                        }
                    }
                }

                linear_input<V> m_in;
                const std::vector<std::size_t>& m_kept;
                std::size_t m_chunk;
                const char* m_func;
            };
        }
    }
}

#endif
