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
#include "../../top_k.hpp"
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
#include "top_k_rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Where a teacher's chunk goes: its logits (rows x classes) or top-k log-probabilities
            /// (rows x k), a layer's gathered hidden states, a top-k teacher's ids (rows x k).
            template <class V>
            struct teacher_chunk
            {
                V* values;
                V* hidden;
                long long* ids;
            };

            /// A fused linear divergence's teacher given as its logits (rows..., classes): each chunk's
            /// rows copied, their first `classes` values.
            template <class V, class T>
            class linear_teacher_rows
            {
            public:

                static constexpr bool top_k = false;

                linear_teacher_rows(const T& logits, const char* func)
                    : m_logits(logits)
                {
                    const shape_type s = to_shape(logits.shape());
                    if (s.empty() || s.back() == 0)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": teacher logits of shape "
                                                            + shape_to_string(s)
                                                            + " (rows..., classes) hold no class"));
                    }
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

                /// Values of V per row of a chunk beside the student's (its logits, a layer's hidden states).
                std::size_t values_per_row(std::size_t classes) const noexcept
                {
                    return classes;
                }

                /// Values per row of teacher_chunk::values: its logits, or its top-k log-probabilities.
                std::size_t row_width(std::size_t classes) const noexcept
                {
                    return classes;
                }

                bool overlaps(const V* p, std::size_t n) const noexcept
                {
                    return memory_span::of(p, n).meets(
                        memory_span::of(m_logits.data, size_of(m_row_shape) * m_classes));
                }

                void chunk(const std::vector<std::size_t>& kept, row_range r, std::size_t, std::size_t classes,
                           const teacher_chunk<V>& buf, const char*) const
                {
                    for (std::size_t i = r.first; i < r.last; ++i)
                    {
                        std::copy_n(m_logits.data + kept[i] * m_classes, classes, buf.values + (i - r.first) * classes);
                    }
                }

            private:

                contiguous_array<V> m_logits;
                shape_type m_row_shape;
                std::size_t m_classes = 0;
            };

            /// A teacher given as its own hidden states and layer: each chunk's logits from a product.
            template <class V, class H, class Head>
            class linear_teacher_rows<V, linear_teacher<H, Head>>
            {
            public:

                static constexpr bool top_k = false;

                linear_teacher_rows(const linear_teacher<H, Head>& t, const char* func)
                    : m_layer(t.hidden, t.head, func, "teacher hidden states")
                {
                }

                const shape_type& row_shape() const noexcept
                {
                    return m_layer.shapes().row_shape;
                }

                std::size_t classes() const noexcept
                {
                    return m_layer.shapes().classes;
                }

                std::size_t values_per_row(std::size_t classes) const noexcept
                {
                    return classes + m_layer.shapes().hidden_size;
                }

                std::size_t row_width(std::size_t classes) const noexcept
                {
                    return classes;
                }

                bool overlaps(const V* p, std::size_t n) const noexcept
                {
                    return m_layer.overlaps(p, n);
                }

                /// Chunk r's logits over the first `classes` classes; hidden states gathered when needed.
                void chunk(const std::vector<std::size_t>& kept, row_range r, std::size_t chunk_rows,
                           std::size_t classes, const teacher_chunk<V>& buf, const char* func) const
                {
                    const linear_chunks<V> chunks(m_layer.input(classes), kept, chunk_rows, func);
                    chunks.logits(chunks.hidden(r, buf.hidden), r.last - r.first, buf.values);
                }

            private:

                linear_layer<V> m_layer;
            };

            /// A teacher given as its top k classes (xloss::top_k): each chunk's ids and log-probabilities
            /// copied; no teacher product at all.
            template <class V, class Ids, class LP>
            class linear_teacher_rows<V, top_k_teacher<Ids, LP>>
            {
            public:

                static constexpr bool top_k = true;
                using I = typename Ids::value_type;

                linear_teacher_rows(const top_k_teacher<Ids, LP>& t, const char* func)
                    : m_ids(t.ids)
                    , m_log_probs(t.log_probs)
                {
                    static_assert(std::is_integral<I>::value, "xloss: top-k teacher ids must be integers");
                    const shape_type is = to_shape(t.ids.shape()), ls = to_shape(t.log_probs.shape());
                    if (is != ls || is.empty() || is.back() == 0)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": teacher ids of shape " + shape_to_string(is)
                            + " and log_probs of shape " + shape_to_string(ls) + " must both be (rows..., k), k >= 1"));
                    }
                    m_row_shape.assign(is.begin(), is.end() - 1);
                    m_k = is.back();
                }

                const shape_type& row_shape() const noexcept
                {
                    return m_row_shape;
                }

                std::size_t k() const noexcept
                {
                    return m_k;
                }

                std::size_t values_per_row(std::size_t) const noexcept
                {
                    return m_k;
                }

                std::size_t row_width(std::size_t) const noexcept
                {
                    return m_k;
                }

                bool overlaps(const V* p, std::size_t n) const noexcept
                {
                    return memory_span::of(p, n).meets(memory_span::of(m_log_probs.data, size_of(m_row_shape) * m_k));
                }

                /// Checks the kept rows' ids (in [0, classes), none twice) and values (not all -inf, no
                /// +inf) before any chunk runs; names the first faulty row.
                template <class Keep>
                void check(Keep keep, std::size_t classes, const shape_type& row_shape, const top_k_settings& settings,
                           std::vector<unsigned char>& seen) const
                {
                    const top_k_rows<default_batch<V>, I, Keep> rows(
                        top_k_source<V, I>{nullptr, m_ids.values.data, m_log_probs.data, size_of(m_row_shape), classes,
                                           m_k, row_shape},
                        keep, settings);
                    rows.check_rows(seen, top_k_rows<default_batch<V>, I, Keep>::student_rows::while_running);
                }

                void chunk(const std::vector<std::size_t>& kept, row_range r, std::size_t, std::size_t,
                           const teacher_chunk<V>& buf, const char*) const
                {
                    for (std::size_t i = r.first; i < r.last; ++i)
                    {
                        const std::size_t to = (i - r.first) * m_k, from = kept[i] * m_k;
                        std::copy_n(m_log_probs.data + from, m_k, buf.values + to);
                        for (std::size_t j = 0; j < m_k; ++j)
                        {
                            buf.ids[to + j] = static_cast<long long>(m_ids.values.data[from + j]);
                        }
                    }
                }

            private:

                label_store<I> m_ids;
                contiguous_array<V> m_log_probs;
                shape_type m_row_shape;
                std::size_t m_k = 0;
            };

            template <class V, class LV, class Policy, class Options, class Teacher>
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
                    const std::size_t extra = m_teacher.values_per_row(s.classes);
                    const linear_chunks<V> chunks(m_layer.input(), kept,
                                                  chunk_rows<V>(m_linear, s.hidden_size, s.classes, extra), m_func);
                    const chunk_buffers<V> buf = ws.buffers(chunks.chunk(), s.hidden_size, s.classes);
                    V* const values = ws.teacher_values(chunks.chunk() * extra);
                    teacher_chunk<V> teacher{values, values + chunks.chunk() * m_teacher.row_width(s.classes), nullptr};
                    if constexpr (linear_teacher_rows<V, Teacher>::top_k)
                    {
                        teacher.ids = ws.teacher_ids(chunks.chunk() * m_teacher.k());
                        check_top_k(ws.seen());
                    }
                    const double scale = reduced() ? 1. / m_divisor : 1.;
                    const double sum =
                        chunks.run(buf, loss, grads,
                                   [&](row_range r)
                                   {
                                       m_teacher.chunk(kept, r, chunks.chunk(), s.classes, teacher, m_func);
                                       return chunk_losses(chunks, r, teacher, scale, grads.wanted(), buf, ws.rows());
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
                    if constexpr (linear_teacher_rows<V, Teacher>::top_k)
                    {
                        if (size_of(m_teacher.row_shape()) != s.rows || m_teacher.k() > s.classes)
                        {
                            detail::raise(std::invalid_argument(
                                std::string("xloss::") + m_func
                                + ": a top-k teacher of k = " + std::to_string(m_teacher.k()) + " over rows of shape "
                                + shape_to_string(m_teacher.row_shape()) + " for a student of "
                                + std::to_string(s.classes) + " classes over rows of shape "
                                + shape_to_string(s.row_shape) + ": as many rows, k at most the classes"));
                        }
                        if (m_options.top_k_tail() == xloss::top_k_tail::bucket && m_options.temperature() != 1.)
                        {
                            detail::raise(option_error(m_func, "temperature", "1 with top_k_tail::bucket",
                                                       m_options.temperature()));
                        }
                    }
                    else if (size_of(m_teacher.row_shape()) != s.rows || m_teacher.classes() < s.classes)
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

                /// The divergence of chunk r: the student's logits in buf.logits, the teacher's chunk in
                /// `teacher`; rows' values into buf.loss, gradients (times `scale`) into buf.grad_logits.
                double chunk_losses(const linear_chunks<V>& chunks, row_range r, const teacher_chunk<V>& teacher,
                                    double scale, bool gradients, const chunk_buffers<V>& buf,
                                    row_workspace<V>& scratch) const
                {
                    const std::size_t n = r.last - r.first;
                    const std::size_t* ids = chunks.row_ids(r);
                    row_outputs<V> out;
                    out.loss = buf.loss;
                    out.grad_student = gradients ? buf.grad_logits : nullptr;
                    out.grad_scalar = scale;
                    if constexpr (!std::is_void<LV>::value)
                    {
                        for (std::size_t i = 0; i < n; ++i)
                        {
                            buf.labels[i] = static_cast<long long>(m_labels.values.data[ids[i]]);
                        }
                    }
                    return with_chunk_keep(buf,
                                           [&](auto keep)
                                           {
                                               return run_rows(keep, n, ids, teacher, out, buf, scratch);
                                           });
                }

                /// f(keep) with the chunk's rows all kept, their labels read when there are labels.
                template <class F>
                static decltype(auto) with_chunk_keep(const chunk_buffers<V>& buf, F&& f)
                {
                    if constexpr (std::is_void<LV>::value)
                    {
                        (void)buf;
                        return f(keep_all{});
                    }
                    else
                    {
                        return f(keep_all_labelled<long long>{buf.labels});
                    }
                }

                /// The chunk's rows through the row engine with the divergence's policy, or through the
                /// top-k rows.
                template <class Keep>
                double run_rows(Keep keep, std::size_t n, const std::size_t* ids, const teacher_chunk<V>& teacher,
                                const row_outputs<V>& out, const chunk_buffers<V>& buf, row_workspace<V>& scratch) const
                {
                    if constexpr (linear_teacher_rows<V, Teacher>::top_k)
                    {
                        const top_k_rows<default_batch<V>, long long, Keep> rows(
                            top_k_source<V, long long>{buf.logits, teacher.ids, teacher.values, n, shapes().classes,
                                                       m_teacher.k(), shapes().row_shape, ids},
                            keep, top_k_settings_of());
                        return rows.run(row_range{0, n}, out, m_threads, scratch);
                    }
                    else
                    {
                        const row_layout layout(shape_type{n, shapes().classes}, 1);
                        const row_source<V> source{buf.logits, teacher.values, layout, shapes().row_shape, ids};
                        const row_settings settings{m_options.temperature(),   m_options.temperature_scale(),
                                                    row_input::logits,         loss_layout::per_row,
                                                    row_checks::while_running, m_func,
                                                    m_options.weight_soft(),   m_options.weight_hard()};
                        return with_policy<Policy>(
                            m_options,
                            [&](const auto& policy)
                            {
                                using P = std::decay_t<decltype(policy)>;
                                const row_engine<default_batch<V>, P, Keep> engine(policy, source, keep, settings);
                                return engine.run(row_range{0, n}, out, m_threads, row_memory::spare_rows, scratch);
                            });
                    }
                }

                top_k_settings top_k_settings_of() const
                {
                    return {m_options.temperature(), m_options.temperature_scale(), m_options.top_k_tail(),
                            m_options.weight_soft(), m_options.weight_hard(),       m_func};
                }

                /// A top-k teacher's ids and values over every kept row, checked before any chunk runs.
                void check_top_k(std::vector<unsigned char>& seen) const
                {
                    if constexpr (std::is_void<LV>::value)
                    {
                        m_teacher.check(keep_all{}, shapes().classes, shapes().row_shape, top_k_settings_of(), seen);
                    }
                    else
                    {
                        m_teacher.check(keep_labels<LV>{m_labels.values.data, m_options.ignore_index()},
                                        shapes().classes, shapes().row_shape, top_k_settings_of(), seen);
                    }
                }

                const char* m_func;
                linear_layer<V> m_layer;
                linear_teacher_rows<V, Teacher> m_teacher;
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
