/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CROSS_ENTROPY_LINEAR_CALL_HPP
#define XLOSS_DETAIL_CROSS_ENTROPY_LINEAR_CALL_HPP

// One call of the fused linear cross-entropy: the checks (shapes, options, labels), the kept rows
// and the divisor, then chunk by chunk the logits of the kept rows (linear/chunks.hpp) and the
// cross-entropy's rows on them (rows.hpp). No (rows x classes) array.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../../cross_entropy_options.hpp"
#include "../../fused_linear_options.hpp"
#include "../core/error.hpp"
#include "../core/labels.hpp"
#include "../core/options_check.hpp"
#include "../core/rows.hpp"
#include "../linear/chunks.hpp"
#include "../linear/layer.hpp"
#include "call.hpp"
#include "rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            template <class V, class LV>
            class linear_cross_entropy_call
            {
            public:

                template <class H, class Head, class L>
                linear_cross_entropy_call(const H& h, const Head& head, const L& labels,
                                          const cross_entropy_options& options, const fused_linear_options& linear,
                                          const char* func)
                    : m_func(func)
                    , m_layer(h, head, func, "hidden states")
                    , m_labels(labels)
                    , m_options(options)
                    , m_linear(linear)
                    , m_threads(resolve_threads(options.num_threads(), func))
                {
                    static_assert(!std::is_same<LV, bool>::value,
                                  "xloss::fused_linear_cross_entropy: labels are class indices, not a mask");
                    const linear_shapes& s = m_layer.shapes();
                    check_cross_entropy_options(options, s.classes, func);
                    if (options.class_axis_given()
                        && normalize_axis(options.class_axis(), s.hidden.size(), func, "class_axis")
                               != s.hidden.size() - 1)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": class_axis "
                                                            + std::to_string(options.class_axis())
                                                            + ": the classes of a linear layer's logits are their "
                                                              "last axis"));
                    }
                    check_labels(labels, s.row_shape, s.logits_shape(), func);
                    double total = 0.;
                    check_label_classes(m_labels.values.data, s.rows, s.classes, options.ignore_index(), s.row_shape,
                                        func,
                                        [&](std::size_t, LV y)
                                        {
                                            total += label_weight(options, y);
                                        });
                    m_divisor = cross_entropy_divisor(options, total);
                }

                const linear_shapes& shapes() const noexcept
                {
                    return m_layer.shapes();
                }

                bool has_bias() const noexcept
                {
                    return m_layer.has_bias();
                }

                bool reduced() const noexcept
                {
                    return m_options.reduction() != reduction::none;
                }

                /// The loss's shape: the rows' for `none`, else ().
                shape_type loss_shape() const
                {
                    return reduced() ? shape_type{} : shapes().row_shape;
                }

                /// Whether n values from p share memory with an input.
                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    return m_layer.overlaps(p, n);
                }

                /**
                 * Runs the call: each row's loss into `loss` (`none`; ignored rows 0) or null, the
                 * gradients of the reduced loss (or of the `none` losses' sum) into `grads`; returns the
                 * reduced loss.
                 */
                double run(V* loss, const linear_gradients<V>& grads, linear_workspace<V>& ws) const
                {
                    const linear_shapes& s = shapes();
                    std::vector<std::size_t>& kept = ws.kept_rows();
                    collect_kept_rows(m_labels.values.data, s.rows, m_options.ignore_index(), kept);
                    const linear_chunks<V> chunks(m_layer.input(), kept,
                                                  chunk_rows<V>(m_linear, s.hidden_size, s.classes), m_func);
                    const chunk_buffers<V> buf = ws.buffers(chunks.chunk(), s.hidden_size, s.classes);
                    const cross_entropy_terms<V> terms = cross_entropy_terms_of<V>(m_options, s.classes);
                    const double scale = empty() ? 0. : reduced() ? 1. / m_divisor : 1.;
                    const double sum =
                        chunks.run(buf, loss, grads,
                                   [&](row_range r)
                                   {
                                       return chunk_losses(chunks, r, terms, scale, grads.wanted(), buf, ws.rows());
                                   });
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
                    const row_layout layout(shape_type{n, shapes().classes}, 1);
                    const cross_entropy_rows<default_batch<V>, long long> rows(
                        cross_entropy_source<V, long long>{buf.logits, layout, shapes().row_shape, buf.labels,
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

                const char* m_func;
                linear_layer<V> m_layer;
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
