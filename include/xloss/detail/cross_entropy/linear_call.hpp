/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CROSS_ENTROPY_LINEAR_CALL_HPP
#define XLOSS_DETAIL_CROSS_ENTROPY_LINEAR_CALL_HPP

// One call of the fused linear cross-entropy: the checks (shapes, options, labels), the kept rows
// and the divisor, then chunk by chunk the logits of the kept rows (linear/chunks.hpp), the
// cross-entropy's rows on them (rows.hpp) and the layer's gradients. No (rows x classes) array.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../cross_entropy_options.hpp"
#include "../../fused_linear_options.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/labels.hpp"
#include "../core/options_check.hpp"
#include "../core/rows.hpp"
#include "../linear/chunks.hpp"
#include "call.hpp"
#include "rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The shapes of a fused linear call: the hidden states (rows..., hidden), the weight
            /// (classes, hidden), the bias (classes) when there is one; throws naming a mismatch.
            struct linear_shapes
            {
                shape_type hidden;
                shape_type row_shape; ///< the hidden states' shape without the last axis
                std::size_t rows = 1;
                std::size_t hidden_size = 0;
                std::size_t classes = 0;

                template <class H, class W>
                linear_shapes(const H& h, const W& w, const char* func)
                    : hidden(to_shape(h.shape()))
                {
                    const shape_type ws = to_shape(w.shape());
                    if (hidden.empty() || ws.size() != 2 || hidden.back() != ws[1] || ws[0] == 0 || ws[1] == 0)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": hidden states of shape " + shape_to_string(hidden)
                            + " and a weight of shape " + shape_to_string(ws)
                            + ": the weight must be (classes, hidden), both above 0, with the hidden states' last "
                              "axis of the same hidden size"));
                    }
                    hidden_size = ws[1];
                    classes = ws[0];
                    row_shape.assign(hidden.begin(), hidden.end() - 1);
                    rows = size_of(row_shape);
                }

                template <class B>
                void check_bias(const B& b, const char* func) const
                {
                    const shape_type bs = to_shape(b.shape());
                    if (bs.size() != 1 || bs[0] != classes)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": a bias of shape "
                                                            + shape_to_string(bs) + " for a weight of "
                                                            + std::to_string(classes) + " classes"));
                    }
                }
            };

            template <class V, class LV>
            class linear_cross_entropy_call
            {
            public:

                template <class H, class Head, class L>
                linear_cross_entropy_call(const H& h, const Head& head, const L& labels,
                                          const cross_entropy_options& options, const fused_linear_options& linear,
                                          const char* func)
                    : m_func(func)
                    , m_shapes(h, head.weight, func)
                    , m_hidden(h)
                    , m_weight(head.weight)
                    , m_bias(bias_of(head))
                    , m_labels(labels)
                    , m_options(options)
                    , m_linear(linear)
                    , m_threads(resolve_threads(options.num_threads(), func))
                {
                    static_assert(!std::is_same<LV, bool>::value,
                                  "xloss::fused_linear_cross_entropy: labels are class indices, not a mask");
                    check_cross_entropy_options(options, m_shapes.classes, func);
                    if (options.class_axis_given()
                        && normalize_axis(options.class_axis(), m_shapes.hidden.size(), func, "class_axis")
                               != m_shapes.hidden.size() - 1)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": class_axis "
                                                            + std::to_string(options.class_axis())
                                                            + ": the classes of a linear layer's logits are their "
                                                              "last axis"));
                    }
                    check_labels(labels, m_shapes.row_shape, m_shapes.hidden, func);
                    double total = 0.;
                    check_label_classes(m_labels.values.data, m_shapes.rows, m_shapes.classes, options.ignore_index(),
                                        m_shapes.row_shape, func,
                                        [&](std::size_t, LV y)
                                        {
                                            total += label_weight(options, y);
                                        });
                    m_divisor = cross_entropy_divisor(options, total);
                }

                const linear_shapes& shapes() const noexcept
                {
                    return m_shapes;
                }

                bool has_bias() const noexcept
                {
                    return m_bias.data != nullptr;
                }

                bool reduced() const noexcept
                {
                    return m_options.reduction() != reduction::none;
                }

                /// The loss's shape: the rows' for `none`, else ().
                shape_type loss_shape() const
                {
                    return reduced() ? shape_type{} : m_shapes.row_shape;
                }

                /// Whether n values from p share memory with an input.
                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    const std::size_t h = m_shapes.hidden_size, v = m_shapes.classes;
                    return overlaps(p, n, m_hidden.data, m_shapes.rows * h) || overlaps(p, n, m_weight.data, v * h)
                           || overlaps(p, n, m_bias.data, has_bias() ? v : 0);
                }

                /**
                 * Runs the call: each row's loss into `loss` (`none`; ignored rows 0) or null, the
                 * gradients of the reduced loss (or of the `none` losses' sum) into `grads`; returns the
                 * reduced loss.
                 */
                double run(V* loss, const linear_gradients<V>& grads, linear_workspace<V>& ws) const
                {
                    std::vector<std::size_t>& kept = ws.kept_rows();
                    const keep_labels<LV> keep{m_labels.values.data, m_options.ignore_index()};
                    for (std::size_t k = 0; k < m_shapes.rows; ++k)
                    {
                        if (keep(k))
                        {
                            kept.push_back(k);
                        }
                    }
                    const linear_chunks<V> chunks(input(), kept, chunk_rows<V>(m_linear, m_shapes.hidden_size,
                                                                                m_shapes.classes),
                                                  m_func);
                    const chunk_buffers<V> buf = ws.buffers(chunks.chunk(), m_shapes.hidden_size, m_shapes.classes);
                    if (loss)
                    {
                        std::fill_n(loss, m_shapes.rows, V(0));
                    }
                    chunks.clear(grads);
                    const cross_entropy_terms<V> terms = cross_entropy_terms_of<V>(m_options, m_shapes.classes);
                    const double scale = empty() ? 0. : reduced() ? 1. / m_divisor : 1.;
                    double sum = 0.;
                    for (std::size_t c = 0; c < chunks.count(); ++c)
                    {
                        const row_range r = chunks.range(c);
                        const V* hidden = chunks.hidden(r, buf.hidden);
                        chunks.logits(hidden, r.last - r.first, buf.logits);
                        sum += chunk_losses(chunks, r, terms, scale, grads.wanted(), buf, ws.rows());
                        if (loss)
                        {
                            for (std::size_t i = r.first; i < r.last; ++i)
                            {
                                loss[kept[i]] = buf.loss[i - r.first];
                            }
                        }
                        if (grads.wanted())
                        {
                            chunks.backward(buf.grad_logits, hidden, r, grads, buf.grad_hidden);
                        }
                    }
                    return empty() ? empty_mean_value(m_options) : sum / m_divisor;
                }

            private:

                /// The cross-entropy of chunk r's logits: its rows' losses into buf.loss, their
                /// gradients (times `scale`) into buf.grad_logits when wanted; returns their sum.
                double chunk_losses(const linear_chunks<V>& chunks, row_range r, const cross_entropy_terms<V>& terms,
                                    double scale, bool gradients, const chunk_buffers<V>& buf,
                                    row_workspace<V>& scratch) const
                {
                    const std::size_t n = r.last - r.first;
                    const std::size_t* ids = chunks.row_ids(r);
                    for (std::size_t i = 0; i < n; ++i)
                    {
                        buf.labels[i] = static_cast<long long>(m_labels.values.data[ids[i]]);
                    }
                    const row_layout layout(shape_type{n, m_shapes.classes}, 1);
                    const cross_entropy_rows<default_batch<V>, long long> rows(
                        cross_entropy_source<V, long long>{buf.logits, layout, m_shapes.row_shape, buf.labels,
                                                           m_options.ignore_index(), m_func, ids},
                        terms);
                    row_outputs<V> out;
                    out.loss = buf.loss;
                    out.grad_student = gradients ? buf.grad_logits : nullptr;
                    out.grad_scalar = scale;
                    return rows.run(row_range{0, n}, out, m_threads, scratch);
                }

                bool empty() const noexcept
                {
                    return m_options.reduction() == reduction::mean && !(m_divisor != 0.);
                }

                linear_input<V> input() const noexcept
                {
                    return {m_hidden.data, m_shapes.rows,   m_shapes.hidden_size,
                            m_weight.data, m_bias.data, m_shapes.classes};
                }

                /// The head's bias, checked, or null.
                template <class Head>
                const auto* bias_of(const Head& head) const
                {
                    if constexpr (Head::has_bias)
                    {
                        m_shapes.check_bias(head.bias, m_func);
                        return &head.bias;
                    }
                    else
                    {
                        return static_cast<const xt::xarray<V>*>(nullptr);
                    }
                }

                static bool overlaps(const V* a, std::size_t n, const V* b, std::size_t m) noexcept
                {
                    const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
                    return a && b && n && m && x < y + m * sizeof(V) && y < x + n * sizeof(V);
                }

                /// An optional input as contiguous data (null when absent).
                struct optional_array
                {
                    std::optional<contiguous_array<V>> values;
                    const V* data = nullptr;

                    template <class E>
                    explicit optional_array(const E* e)
                    {
                        if (e)
                        {
                            values.emplace(*e);
                            data = values->data;
                        }
                    }
                };

                const char* m_func;
                linear_shapes m_shapes;
                contiguous_array<V> m_hidden;
                contiguous_array<V> m_weight;
                optional_array m_bias;
                label_store<LV> m_labels;
                const cross_entropy_options& m_options;
                const fused_linear_options& m_linear;
                int m_threads;
                double m_divisor = 1.;
            };
        }
    }
}

#endif
