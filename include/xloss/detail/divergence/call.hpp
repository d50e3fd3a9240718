/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_DIVERGENCE_CALL_HPP
#define XLOSS_DETAIL_DIVERGENCE_CALL_HPP

// One call of a divergence from logits: the checks of its arguments and options, the rows, the
// labels, the divisor; it runs a row policy through the row engine into given outputs.

#include <cmath>
#include <cstddef>
#include <cstdint>
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
#include "../core/rows.hpp"
#include "../engine/row_call.hpp"
#include "../engine/row_engine.hpp"
#include "../engine/row_policy.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/softmax.hpp"
#include "policies.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The gradient a backward call computes.
            enum class wrt
            {
                student,
                teacher
            };

            /// Checks a temperature: in (0, max_temperature].
            inline void check_temperature(double t, const char* func)
            {
                if (!is_positive_finite(t) || t > max_temperature)
                {
                    detail::raise(
                        option_error(func, "temperature", "positive and at most xloss::max_temperature (100)", t));
                }
            }

            /// Checks the row options; V is the logits' value type (1 / T and T^2 must be finite in it).
            template <class V, class Options>
            inline void check_row_options(const Options& options, const char* func)
            {
                check_loss_options(options, func, "from the labels or shapes");
                const double t = options.temperature();
                check_temperature(t, func);
                const V inv = static_cast<V>(1. / t), square = static_cast<V>(t * t);
                if (!is_positive_finite(inv) || !is_positive_finite(square))
                {
                    detail::raise(option_error(func, "temperature",
                                               std::string("such that 1/T and T^2 are finite and not 0 in ")
                                                   + (sizeof(V) == sizeof(float) ? "float" : "double"),
                                               t));
                }
                if (options.input() != row_input::logits && options.input() != row_input::log_probs)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": input "
                                                        + std::to_string(static_cast<int>(options.input()))
                                                        + " is not one of logits, log_probs"));
                }
                if (options.input() == row_input::log_probs && t != 1.)
                {
                    detail::raise(option_error(func, "temperature", "1 with row_input::log_probs", t));
                }
            }

            /**
             * The arguments of one call, checked: the logits as contiguous data of V (float, double, or
             * a 16-bit type the engine reads row by row into float), their rows
             * along the axis, the labels' rows to keep, the divisor and the threads.
             */
            template <class V, class LV>
            class divergence_call : public row_call_base<divergence_call<V, LV>, V>
            {
            public:

                using row_call_base<divergence_call<V, LV>, V>::grad_output;

                template <class S, class T, class L, class Options>
                divergence_call(const S& student, const T& teacher, const L& labels, const Options& options,
                                const char* func, loss_layout layout = loss_layout::per_row)
                    : m_func(func)
                    , m_layout(layout)
                    , m_shape(to_shape(student.shape()))
                    , m_rows(checked_rows(student, teacher, options, func))
                    , m_student(student)
                    , m_teacher(teacher)
                    , m_reduction(options.reduction())
                    , m_temperature(options.temperature())
                    , m_scale(options.temperature_scale())
                    , m_input(options.input())
                    , m_threads(resolve_threads(options.num_threads(), func))
                    , m_ignore_index(options.ignore_index())
                    , m_weight_soft(options.weight_soft())
                    , m_weight_hard(options.weight_hard())
                    , m_labels(labels)
                {
                    check_row_options<compute_t<V>>(options, func);
                    check_labels(labels, m_row_shape, m_shape, func);
                    check_hard_labels(labels, options);
                    const auto keep = m_labels.keep(m_ignore_index);
                    for (std::size_t k = 0; k < m_rows.rows; ++k)
                    {
                        m_kept += keep(k) ? 1 : 0;
                    }
                    m_divisor = reduction_divisor(
                        m_reduction, options.divisor(), m_kept > 0 ? static_cast<double>(m_kept) : 1.,
                        m_row_shape.empty() || m_row_shape[0] == 0 ? 1. : static_cast<double>(m_row_shape[0]));
                }

                const shape_type& shape() const noexcept
                {
                    return m_shape;
                }

                /// The loss's shape: for `none` the rows' shape (the logits' with loss_layout::per_class),
                /// else ().
                shape_type loss_shape() const
                {
                    if (m_reduction != reduction::none)
                    {
                        return {};
                    }
                    return m_layout == loss_layout::per_class ? m_shape : m_row_shape;
                }

                bool reduced() const noexcept
                {
                    return m_reduction != reduction::none;
                }

                double divisor() const noexcept
                {
                    return m_divisor;
                }

                /// What a scalar grad_output is multiplied by.
                double grad_scale() const noexcept
                {
                    return 1. / m_divisor;
                }

                const char* func() const noexcept
                {
                    return m_func;
                }

                /// Whether n elements from p share memory with either logits (then outputs go aside first).
                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    const std::size_t size = m_rows.rows * m_rows.length;
                    return overlap(p, n, m_student.data, size) || overlap(p, n, m_teacher.data, size);
                }

                /// The number of kept rows.
                std::size_t kept() const noexcept
                {
                    return m_kept;
                }

                /**
                 * Runs the policy over every row into `out`; returns the reduced loss (sum / divisor).
                 * Into the caller's outputs, `row_checks::before_writing` checks every kept row first,
                 * so that nothing is written on an error, and `row_memory::none` allocates nothing.
                 */
                template <class Policy>
                double run(const Policy& policy, const row_outputs<V>& out,
                           row_checks checks = row_checks::while_running,
                           row_memory memory = row_memory::spare_rows) const
                {
                    row_workspace<compute_t<V>> workspace;
                    return run(policy, row_range{0, m_rows.rows}, out, workspace, checks, memory);
                }

                /**
                 * The call as a plan: its checks of the options, shapes and labels, kept-row count and
                 * divisor were made once, by the constructor; this runs rows [range.first, range.last)
                 * into `out` (indexed as the whole call's) with the caller's workspace, which allocates
                 * only when a run needs more than the ones before it, and returns those rows' sum /
                 * divisor. The ranges' results add up to run()'s, row for row. (row_checks::before_writing
                 * checks every row of the call first, and may allocate a buffer for rows along an inner
                 * axis: the `_out` calls' mode, not a chunked run's.)
                 */
                template <class Policy>
                double run(const Policy& policy, row_range range, const row_outputs<V>& out,
                           row_workspace<compute_t<V>>& workspace, row_checks checks = row_checks::while_running,
                           row_memory memory = row_memory::spare_rows) const
                {
                    if (range.first > range.last || range.last > m_rows.rows)
                    {
                        detail::raise(std::out_of_range(
                            std::string("xloss::") + m_func + ": rows [" + std::to_string(range.first) + ", "
                            + std::to_string(range.last) + ") of a call of " + std::to_string(m_rows.rows) + " rows"));
                    }
                    const auto keep = m_labels.keep(m_ignore_index);
                    const row_engine<default_batch<compute_t<V>>, Policy, decltype(keep), V> engine(
                        policy, row_source<V>{m_student.data, m_teacher.data, m_rows, m_row_shape}, keep,
                        row_settings{m_temperature, m_scale, m_input, m_layout, checks, m_func, m_weight_soft,
                                     m_weight_hard});
                    if (checks == row_checks::before_writing)
                    {
                        engine.check_rows();
                    }
                    return engine.run(range, out, m_threads, memory, workspace) / m_divisor;
                }

                /// The number of rows.
                std::size_t rows() const noexcept
                {
                    return m_rows.rows;
                }

                /// The loss, into a new array.
                template <class Policy>
                xt::xarray<V> loss(const Policy& policy) const
                {
                    xt::xarray<V> loss = new_array<V>(loss_shape());
                    row_outputs<V> out;
                    out.loss = reduced() ? nullptr : loss.data();
                    const double value = run(policy, out);
                    if (reduced())
                    {
                        loss() = stored_as<V>(value);
                    }
                    return loss;
                }

                /// One gradient for grad_output g, into a new array of the logits' shape.
                template <class Policy, class G>
                xt::xarray<V> gradient(const Policy& policy, const G& g, wrt which) const
                {
                    grad_rows<V> spread;
                    row_outputs<V> out = this->grad_output(g, spread);
                    xt::xarray<V> grad = new_array<V>(m_shape);
                    (which == wrt::student ? out.grad_student : out.grad_teacher) = grad.data();
                    run(policy, out);
                    return grad;
                }

                /// The loss and the student's gradient (the teacher's too when asked), grad_output 1.
                template <class Policy>
                divergence_result<V> forward_backward(const Policy& policy, bool teacher_grad) const
                {
                    divergence_result<V> r;
                    r.loss = new_array<V>(loss_shape());
                    r.grad_student = new_array<V>(m_shape);
                    r.grad_teacher = new_array<V>(teacher_grad ? m_shape : shape_type{0});
                    grad_rows<V> spread;
                    row_outputs<V> out = grad_output(1.0, spread);
                    out.loss = reduced() ? nullptr : r.loss.data();
                    out.grad_student = r.grad_student.data();
                    out.grad_teacher = teacher_grad ? r.grad_teacher.data() : nullptr;
                    std::vector<double> parts(mixed() ? 2 * m_rows.rows : 0);
                    out.parts = mixed() ? parts.data() : nullptr;
                    const double value = run(policy, out);
                    if (reduced())
                    {
                        r.loss() = stored_as<V>(value);
                    }
                    r.soft_loss = mixed() ? this->reduce_part(parts, 0) : new_array<V>(shape_type{0});
                    r.hard_loss = mixed() ? this->reduce_part(parts, 1) : new_array<V>(shape_type{0});
                    return r;
                }

                /// Whether the loss mixes in the hard cross-entropy (weight_hard > 0).
                bool mixed() const noexcept
                {
                    return m_weight_hard > 0.;
                }

            private:

                /// With weight_hard > 0 the labels are class indices: each kept one a class of the row.
                template <class L, class Options>
                void check_hard_labels(const L& labels, const Options& options) const
                {
                    if (options.weight_hard() == 0.)
                    {
                        return;
                    }
                    if (m_layout == loss_layout::per_class)
                    {
                        detail::raise(
                            option_error(m_func, "weight_hard", "0 for a loss without labels", options.weight_hard()));
                    }
                    if constexpr (std::is_same<L, no_labels>::value || std::is_same<LV, bool>::value)
                    {
                        (void)labels;
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": weight_hard "
                                                            + number_to_string(options.weight_hard())
                                                            + " needs labels that are class indices"));
                    }
                    else
                    {
                        check_label_classes(m_labels.values.data, m_rows.rows, m_rows.length, m_ignore_index,
                                            m_row_shape, m_func, [](std::size_t, LV) {});
                    }
                }

                static bool overlap(const V* a, std::size_t n, const V* b, std::size_t m) noexcept
                {
                    const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
                    return a && b && n && m && x < y + m * sizeof(V) && y < x + n * sizeof(V);
                }

                template <class S, class T, class Options>
                row_layout checked_rows(const S& student, const T& teacher, const Options& options, const char* func)
                {
                    const shape_type ts = to_shape(teacher.shape());
                    if (ts != m_shape)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": student_logits of shape "
                                                            + shape_to_string(m_shape) + " and teacher_logits of shape "
                                                            + shape_to_string(ts) + " differ"));
                    }
                    if (m_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                            + ": the logits need at least one axis (the classes)"));
                    }
                    (void)student;
                    const std::size_t axis = normalize_axis(options.axis(), m_shape.size(), func, "axis");
                    for (std::size_t d = 0; d < m_shape.size(); ++d)
                    {
                        if (d != axis)
                        {
                            m_row_shape.push_back(m_shape[d]);
                        }
                    }
                    return row_layout(m_shape, axis);
                }

                const char* m_func;
                loss_layout m_layout;
                shape_type m_shape;
                shape_type m_row_shape;
                row_layout m_rows;
                contiguous_array<V> m_student;
                contiguous_array<V> m_teacher;
                reduction m_reduction;
                double m_temperature;
                xloss::temperature_scale m_scale;
                row_input m_input;
                int m_threads;
                long long m_ignore_index;
                double m_weight_soft;
                double m_weight_hard;
                label_store<LV> m_labels;
                std::size_t m_kept = 0;
                double m_divisor = 1.;
            };
        }
    }
}

#endif
