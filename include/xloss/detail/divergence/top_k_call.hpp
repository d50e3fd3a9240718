/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_DIVERGENCE_TOP_K_CALL_HPP
#define XLOSS_DETAIL_DIVERGENCE_TOP_K_CALL_HPP

// One call of the forward KL from a top-k teacher: its checks (options, shapes, ids, labels), the
// divisor; it runs the rows (top_k_rows.hpp) into given outputs.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../distill_options.hpp"
#include "../../divergence_result.hpp"
#include "../../reduction.hpp"
#include "../core/allocate.hpp"
#include "../core/divisor.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/grad_output.hpp"
#include "../core/labels.hpp"
#include "../core/options_check.hpp"
#include "call.hpp"
#include "top_k_rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            template <class V, class I, class LV>
            class top_k_call : public row_call_base<top_k_call<V, I, LV>, V>
            {
            public:

                template <class S, class Ids, class LP, class L, class Options>
                top_k_call(const S& student, const Ids& ids, const LP& log_probs, const L& labels,
                           const Options& options, const char* func)
                    : m_func(func)
                    , m_shape(to_shape(student.shape()))
                    , m_student(student)
                    , m_ids(ids)
                    , m_log_probs(log_probs)
                    , m_labels(labels)
                    , m_options_reduction(options.reduction())
                    , m_threads(resolve_threads(options.num_threads(), func))
                    , m_settings{options.temperature(), options.temperature_scale(), options.top_k_tail(),
                                 options.weight_soft(), options.weight_hard(),       func}
                    , m_ignore_index(options.ignore_index())
                {
                    static_assert(std::is_integral<I>::value, "xloss: top-k teacher ids must be integers");
                    check_row_options<V>(options, func);
                    check_shapes(ids, log_probs, options);
                    check_labels(labels, m_row_shape, m_shape, func);
                    if (options.target_grad())
                    {
                        detail::raise(
                            option_error(func, "target_grad", "false with a top-k teacher (no teacher gradient)", 1.));
                    }
                    if (options.input() != row_input::logits)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func
                            + ": a top-k teacher needs the student's logits (row_input::logits)"));
                    }
                    if (options.top_k_tail() == xloss::top_k_tail::bucket && options.temperature() != 1.)
                    {
                        detail::raise(
                            option_error(func, "temperature", "1 with top_k_tail::bucket", options.temperature()));
                    }
                    if (options.weight_hard() > 0.)
                    {
                        if constexpr (std::is_same<LV, void>::value || std::is_same<LV, bool>::value)
                        {
                            detail::raise(std::invalid_argument(std::string("xloss::") + func + ": weight_hard "
                                                                + number_to_string(options.weight_hard())
                                                                + " needs labels that are class indices"));
                        }
                        else
                        {
                            check_label_classes(m_labels.values.data, m_rows, m_n, m_ignore_index, m_row_shape, func,
                                                [](std::size_t, LV) {});
                        }
                    }
                    const auto keep = m_labels.keep(m_ignore_index);
                    std::size_t kept = 0;
                    for (std::size_t r = 0; r < m_rows; ++r)
                    {
                        kept += keep(r) ? 1 : 0;
                    }
                    m_divisor = reduction_divisor(
                        m_options_reduction, options.divisor(), kept > 0 ? static_cast<double>(kept) : 1.,
                        m_row_shape.empty() || m_row_shape[0] == 0 ? 1. : static_cast<double>(m_row_shape[0]));
                }

                const shape_type& shape() const noexcept
                {
                    return m_shape;
                }

                shape_type loss_shape() const
                {
                    return reduced() ? shape_type{} : m_row_shape;
                }

                bool reduced() const noexcept
                {
                    return m_options_reduction != reduction::none;
                }

                bool mixed() const noexcept
                {
                    return m_settings.weight_hard > 0.;
                }

                double divisor() const noexcept
                {
                    return m_divisor;
                }

                double grad_scale() const noexcept
                {
                    return 1. / m_divisor;
                }

                const char* func() const noexcept
                {
                    return m_func;
                }

                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    const auto x = reinterpret_cast<std::uintptr_t>(p),
                               y = reinterpret_cast<std::uintptr_t>(m_student.data),
                               z = reinterpret_cast<std::uintptr_t>(m_log_probs.data);
                    const std::size_t bytes = n * sizeof(V), ns = m_rows * m_n * sizeof(V),
                                      nl = m_rows * m_k * sizeof(V);
                    return p && n && ((x < y + ns && y < x + bytes) || (x < z + nl && z < x + bytes));
                }

                /// Runs every row into `out`; returns the sum / divisor. Ids and the teacher's values are
                /// checked first; the student's rows too with row_checks::before_writing.
                double run(const row_outputs<V>& out, row_checks checks = row_checks::while_running) const
                {
                    const auto keep = m_labels.keep(m_ignore_index);
                    const top_k_rows<default_batch<V>, I, decltype(keep)> rows(
                        top_k_source<V, I>{m_student.data, m_ids.values.data, m_log_probs.data, m_rows, m_n, m_k,
                                           m_row_shape},
                        keep, m_settings);
                    using rows_type = std::decay_t<decltype(rows)>;
                    std::vector<unsigned char> seen;
                    rows.check_rows(seen, checks == row_checks::before_writing
                                              ? rows_type::student_rows::check
                                              : rows_type::student_rows::while_running);
                    row_workspace<V> workspace;
                    return rows.run(row_range{0, m_rows}, out, m_threads, workspace) / m_divisor;
                }

                divergence_result<V> forward_backward() const
                {
                    divergence_result<V> r;
                    r.loss = new_array<V>(loss_shape());
                    r.grad_student = new_array<V>(m_shape);
                    r.grad_teacher = new_array<V>(shape_type{0});
                    grad_rows<V> spread;
                    row_outputs<V> out = this->grad_output(1.0, spread);
                    out.loss = reduced() ? nullptr : r.loss.data();
                    out.grad_student = r.grad_student.data();
                    std::vector<double> parts(mixed() ? 2 * m_rows : 0);
                    out.parts = mixed() ? parts.data() : nullptr;
                    const double value = run(out);
                    if (reduced())
                    {
                        r.loss() = static_cast<V>(value);
                    }
                    r.soft_loss = mixed() ? this->reduce_part(parts, 0) : new_array<V>(shape_type{0});
                    r.hard_loss = mixed() ? this->reduce_part(parts, 1) : new_array<V>(shape_type{0});
                    return r;
                }

            private:

                template <class Ids, class LP, class Options>
                void check_shapes(const Ids& ids, const LP& log_probs, const Options& options)
                {
                    if (m_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func
                                                            + ": the logits need at least one axis (the classes)"));
                    }
                    const std::size_t axis = normalize_axis(options.axis(), m_shape.size(), m_func, "axis");
                    if (axis != m_shape.size() - 1)
                    {
                        detail::raise(option_error(m_func, "axis", "the last axis with a top-k teacher",
                                                   static_cast<double>(options.axis())));
                    }
                    const shape_type is = to_shape(ids.shape()), ls = to_shape(log_probs.shape());
                    m_row_shape.assign(m_shape.begin(), m_shape.end() - 1);
                    shape_type expected = m_row_shape;
                    expected.push_back(is.empty() ? 0 : is.back());
                    if (is != ls || is.size() != m_shape.size() || is != expected || is.back() == 0)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + m_func + ": teacher ids of shape " + shape_to_string(is)
                            + " and log_probs of shape " + shape_to_string(ls) + " must both be (rows..., k), k >= 1, "
                            + "with the rows of student_logits of shape " + shape_to_string(m_shape)));
                    }
                    m_n = m_shape.back();
                    m_k = is.back();
                    m_rows = size_of(m_row_shape);
                }

                const char* m_func;
                shape_type m_shape;
                shape_type m_row_shape;
                contiguous_array<V> m_student;
                label_store<I> m_ids;
                contiguous_array<V> m_log_probs;
                label_store<LV> m_labels;
                reduction m_options_reduction;
                int m_threads;
                top_k_settings m_settings;
                long long m_ignore_index;
                std::size_t m_rows = 0;
                std::size_t m_n = 0;
                std::size_t m_k = 0;
                double m_divisor = 1.;
            };
        }
    }
}

#endif
