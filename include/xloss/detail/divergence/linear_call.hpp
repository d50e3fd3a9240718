/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_DIVERGENCE_LINEAR_CALL_HPP
#define XLOSS_DETAIL_DIVERGENCE_LINEAR_CALL_HPP

// One call of a fused linear divergence: the student's logits from its hidden states and output
// layer, chunk by chunk (linear/chunks.hpp); the teacher's chunk from its own hidden states and
// layer (a second product) or from its logits (rows copied); the row engine with the divergence's
// policy on each chunk. A teacher with more classes than the student gives its first ones.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../../distill_options.hpp"
#include "../../fused_linear_options.hpp"
#include "../../linear_head.hpp"
#include "../core/divisor.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/labels.hpp"
#include "../core/options_check.hpp"
#include "../core/rows.hpp"
#include "../engine/row_engine.hpp"
#include "../engine/row_policy.hpp"
#include "../linear/chunks.hpp"
#include "../linear/layer.hpp"
#include "call.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// A fused linear divergence's teacher: a layer of its own, or its logits (rows x classes).
            template <class V>
            class linear_teacher_rows
            {
            public:

                template <class H, class Head>
                linear_teacher_rows(const linear_teacher<H, Head>& t, const char* func)
                {
                    m_layer.emplace(t.hidden, t.head, func, "teacher hidden states");
                    m_row_shape = m_layer->shapes().row_shape;
                    m_classes = m_layer->shapes().classes;
                }

                template <class T, class = std::enable_if_t<!is_linear_teacher<T>::value>>
                linear_teacher_rows(const T& logits, const char* func)
                {
                    const shape_type s = to_shape(logits.shape());
                    if (s.empty() || s.back() == 0)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                            + ": teacher logits of shape " + shape_to_string(s)
                                                            + " (rows..., classes) hold no class"));
                    }
                    m_logits.emplace(logits);
                    m_row_shape.assign(s.begin(), s.end() - 1);
                    m_classes = s.back();
                }

                const shape_type& row_shape() const noexcept
                {
                    return m_row_shape;
                }

                std::size_t classes() const noexcept
                {
                    return m_classes;
                }

                /// The hidden size of a layer teacher (0 for logits).
                std::size_t hidden_size() const noexcept
                {
                    return m_layer ? m_layer->shapes().hidden_size : 0;
                }

                bool overlaps(const V* p, std::size_t n) const noexcept
                {
                    return m_layer ? m_layer->overlaps(p, n)
                                   : memory_span::of(p, n).meets(
                                         memory_span::of(m_logits->data, size_of(m_row_shape) * m_classes));
                }

                /// Chunk r's logits over the first `classes` classes into `logits` (rows x classes); a
                /// layer's hidden states gathered into `hidden` when not consecutive.
                void chunk(const std::vector<std::size_t>& kept, row_range r, std::size_t chunk_rows,
                           std::size_t classes, V* logits, V* hidden, const char* func) const
                {
                    if (m_layer)
                    {
                        const linear_chunks<V> chunks(m_layer->input(classes), kept, chunk_rows, func);
                        chunks.logits(chunks.hidden(r, hidden), r.last - r.first, logits);
                        return;
                    }
                    for (std::size_t i = r.first; i < r.last; ++i)
                    {
                        std::copy_n(m_logits->data + kept[i] * m_classes, classes, logits + (i - r.first) * classes);
                    }
                }

            private:

                std::optional<linear_layer<V>> m_layer;
                std::optional<contiguous_array<V>> m_logits;
                shape_type m_row_shape;
                std::size_t m_classes = 0;
            };

            template <class V, class LV, class Policy, class Options>
            class linear_divergence_call
            {
            public:

                template <class H, class Head, class T, class L>
                linear_divergence_call(const H& h, const Head& head, const T& teacher, const L& labels,
                                       const Options& options, const fused_linear_options& linear, const char* func)
                    : m_func(func)
                    , m_layer(h, head, func, "hidden states")
                    , m_teacher(teacher, func)
                    , m_labels(labels)
                    , m_options(options)
                    , m_linear(linear)
                    , m_threads(resolve_threads(options.num_threads(), func))
                {
                    check_row_options<V>(options, func);
                    check_arguments(labels);
                    const linear_shapes& s = m_layer.shapes();
                    std::size_t kept = s.rows;
                    if constexpr (!std::is_void<LV>::value)
                    {
                        const keep_labels<LV> keep{m_labels.values.data, options.ignore_index()};
                        kept = 0;
                        for (std::size_t k = 0; k < s.rows; ++k)
                        {
                            kept += keep(k) ? 1 : 0;
                        }
                    }
                    m_divisor = reduction_divisor(
                        options.reduction(), options.divisor(), kept > 0 ? static_cast<double>(kept) : 1.,
                        s.row_shape.empty() || s.row_shape[0] == 0 ? 1. : static_cast<double>(s.row_shape[0]));
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

                shape_type loss_shape() const
                {
                    return reduced() ? shape_type{} : shapes().row_shape;
                }

                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    return m_layer.overlaps(p, n) || m_teacher.overlaps(p, n);
                }

                /// Runs the call (see linear_cross_entropy_call::run).
                double run(V* loss, const linear_gradients<V>& grads, linear_workspace<V>& ws) const
                {
                    const linear_shapes& s = shapes();
                    std::vector<std::size_t>& kept = ws.kept_rows();
                    if constexpr (std::is_void<LV>::value)
                    {
                        for (std::size_t k = 0; k < s.rows; ++k)
                        {
                            kept.push_back(k);
                        }
                    }
                    else
                    {
                        collect_kept_rows(m_labels.values.data, s.rows, m_options.ignore_index(), kept);
                    }
                    const std::size_t th = m_teacher.hidden_size();
                    const linear_chunks<V> chunks(m_layer.input(), kept,
                                                  chunk_rows<V>(m_linear, s.hidden_size, s.classes, s.classes + th),
                                                  m_func);
                    const chunk_buffers<V> buf = ws.buffers(chunks.chunk(), s.hidden_size, s.classes);
                    const auto teacher = ws.teacher_buffers(chunks.chunk(), th, s.classes);
                    const double scale = reduced() ? 1. / m_divisor : 1.;
                    const double sum = chunks.run(buf, loss, grads,
                                                  [&](row_range r)
                                                  {
                                                      m_teacher.chunk(kept, r, chunks.chunk(), s.classes,
                                                                      teacher.first, teacher.second, m_func);
                                                      return chunk_losses(chunks, r, teacher.first, scale,
                                                                          grads.wanted(), buf, ws.rows());
                                                  });
                    return sum / m_divisor;
                }

            private:

                template <class L>
                void check_arguments(const L& labels) const
                {
                    const linear_shapes& s = shapes();
                    if (m_options.teacher_grad())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func
                                                            + ": teacher_grad: a fused linear loss gives no teacher "
                                                              "gradient"));
                    }
                    if (m_options.input() != row_input::logits)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func
                                                            + ": input: a fused linear loss's rows are logits"));
                    }
                    if (size_of(m_teacher.row_shape()) != s.rows || m_teacher.classes() < s.classes)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + m_func + ": a teacher of " + std::to_string(m_teacher.classes())
                            + " classes over rows of shape " + shape_to_string(m_teacher.row_shape())
                            + " for a student of " + std::to_string(s.classes) + " classes over rows of shape "
                            + shape_to_string(s.row_shape)
                            + ": the teacher needs as many rows and at least the student's classes"));
                    }
                    if (normalize_axis(m_options.class_axis(), s.hidden.size(), m_func, "class_axis")
                        != s.hidden.size() - 1)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": class_axis "
                                                            + std::to_string(m_options.class_axis())
                                                            + ": the classes of a linear layer's logits are their "
                                                              "last axis"));
                    }
                    check_labels(labels, s.row_shape, s.logits_shape(), m_func);
                    if constexpr (std::is_void<LV>::value || std::is_same<LV, bool>::value)
                    {
                        if (m_options.weight_hard() > 0.)
                        {
                            detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": weight_hard "
                                                                + number_to_string(m_options.weight_hard())
                                                                + " needs labels that are class indices"));
                        }
                    }
                    else if (m_options.weight_hard() > 0.)
                    {
                        // The hard cross-entropy reads each kept row's label as a class of the student's.
                        check_label_classes(m_labels.values.data, s.rows, s.classes, m_options.ignore_index(),
                                            s.row_shape, m_func, [](std::size_t, LV) {});
                    }
                }

                /// The divergence of chunk r: the student's logits in buf.logits, the teacher's in
                /// `teacher`; rows' values into buf.loss, gradients (times `scale`) into buf.grad_logits.
                double chunk_losses(const linear_chunks<V>& chunks, row_range r, const V* teacher, double scale,
                                    bool gradients, const chunk_buffers<V>& buf, row_workspace<V>& scratch) const
                {
                    const std::size_t n = r.last - r.first;
                    const std::size_t* ids = chunks.row_ids(r);
                    const row_layout layout(shape_type{n, shapes().classes}, 1);
                    const row_source<V> source{buf.logits, teacher, layout, shapes().row_shape, ids};
                    const row_settings settings{m_options.temperature(), m_options.temperature_scale(),
                                                row_input::logits,       loss_layout::per_row,
                                                row_checks::while_running, m_func,
                                                m_options.weight_soft(), m_options.weight_hard()};
                    row_outputs<V> out;
                    out.loss = buf.loss;
                    out.grad_student = gradients ? buf.grad_logits : nullptr;
                    out.grad_scalar = scale;
                    return with_policy<Policy>(
                        m_options,
                        [&](const auto& policy)
                        {
                            using P = std::decay_t<decltype(policy)>;
                            if constexpr (std::is_void<LV>::value)
                            {
                                const row_engine<default_batch<V>, P, keep_all> engine(policy, source, keep_all{},
                                                                                       settings);
                                return engine.run(row_range{0, n}, out, m_threads, row_memory::spare_rows, scratch);
                            }
                            else
                            {
                                for (std::size_t i = 0; i < n; ++i)
                                {
                                    buf.labels[i] = static_cast<long long>(m_labels.values.data[ids[i]]);
                                }
                                const row_engine<default_batch<V>, P, keep_all_labelled<long long>> engine(
                                    policy, source, keep_all_labelled<long long>{buf.labels}, settings);
                                return engine.run(row_range{0, n}, out, m_threads, row_memory::spare_rows, scratch);
                            }
                        });
                }

                const char* m_func;
                linear_layer<V> m_layer;
                linear_teacher_rows<V> m_teacher;
                label_store<LV> m_labels;
                const Options& m_options;
                const fused_linear_options& m_linear;
                int m_threads;
                double m_divisor = 1.;
            };
        }
    }
}

#endif
