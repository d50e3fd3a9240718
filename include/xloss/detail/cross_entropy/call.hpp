/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CROSS_ENTROPY_CALL_HPP
#define XLOSS_DETAIL_CROSS_ENTROPY_CALL_HPP

// One call of the cross-entropy: its checks (options, shapes, labels and their range), the rows,
// the divisor of `mean` (the kept labels' weights); it runs the rows into given outputs.

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../cross_entropy_options.hpp"
#include "../../reduction.hpp"
#include "../core/allocate.hpp"
#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/grad_output.hpp"
#include "../core/labels.hpp"
#include "../core/options_check.hpp"
#include "../core/rows.hpp"
#include "../engine/row_call.hpp"
#include "rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Checks the options of a cross-entropy over `classes` classes.
            inline void check_cross_entropy_options(const cross_entropy_options& options, std::size_t classes,
                                                    const char* func)
            {
                check_loss_options(options, func, "from the labels' weights");
                if (options.reduction() == reduction::batchmean)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func
                                                        + ": reduction batchmean is not one of none, mean, sum"));
                }
                if (options.has_weight() && options.weight().size() != classes)
                {
                    detail::raise(std::invalid_argument(
                        std::string("xloss::") + func + ": weight of " + std::to_string(options.weight().size())
                        + " classes for logits of " + std::to_string(classes) + " classes"));
                }
            }

            /// What the rows of a cross-entropy of these options compute besides the likelihood.
            template <class V>
            cross_entropy_terms<V> cross_entropy_terms_of(const cross_entropy_options& options, std::size_t classes)
            {
                cross_entropy_terms<V> t;
                t.smoothing = options.label_smoothing();
                t.z_loss = options.z_loss();
                t.softcap = options.softcap();
                const class_weights* w = options.class_weights();
                t.weight = w ? w->template data<V>() : nullptr;
                t.weight_total = w ? w->total : static_cast<double>(classes);
                return t;
            }

            /// The weight of a kept label (1 without class weights).
            template <class LV>
            double label_weight(const cross_entropy_options& options, LV y) noexcept
            {
                const class_weights* w = options.class_weights();
                return w ? w->as_double[static_cast<std::size_t>(y)] : 1.;
            }

            /// The divisor of the loss's sum: the options' divisor or the kept labels' weights for
            /// `mean`, else 1.
            inline double cross_entropy_divisor(const cross_entropy_options& options, double kept_weight) noexcept
            {
                return options.reduction() != reduction::mean ? 1.
                       : options.divisor() > 0.               ? options.divisor()
                                                              : kept_weight;
            }

            /// What `mean` gives when its divisor is 0.
            inline double empty_mean_value(const cross_entropy_options& options) noexcept
            {
                return options.empty_mean() == xloss::empty_mean::zero ? 0. : std::numeric_limits<double>::quiet_NaN();
            }

            /// Whether targets of element type T are probabilities (of the logits' shape), not class indices.
            template <class T>
            struct is_soft_target
                : std::integral_constant<bool, std::is_floating_point<T>::value || is_float16<T>::value>
            {
            };

            /// The value type of a cross-entropy of logits X: with probability targets L, the promoted type
            /// of both (as the divergences' arguments); with class indices, the logits'.
            template <class X, class L, bool Soft = is_soft_target<typename L::value_type>::value>
            struct cross_entropy_value
            {
                using type = row_value_t<X>;
            };

            template <class X, class L>
            struct cross_entropy_value<X, L, true>
            {
                using type = row_value_t<X, L>;
            };

            template <class X, class L>
            using cross_entropy_value_t = typename cross_entropy_value<X, L>::type;

            /**
             * One call: the logits V (float, double or a 16-bit type) and targets LV, class indices
             * (integers) or probabilities (floating point, of the logits' shape: PyTorch's soft labels).
             */
            template <class V, class LV>
            class cross_entropy_call : public row_call_base<cross_entropy_call<V, LV>, V>
            {
            public:

                static constexpr bool soft = is_soft_target<LV>::value;

                template <class X, class L>
                cross_entropy_call(const X& logits, const L& targets, const cross_entropy_options& options,
                                   const char* func)
                    : m_func(func)
                    , m_shape(to_shape(logits.shape()))
                    , m_rows(checked_rows(options))
                    , m_logits(logits)
                    , m_labels(targets)
                    , m_options(options)
                    , m_threads(resolve_threads(options.num_threads(), func))
                {
                    static_assert(!std::is_same<LV, bool>::value,
                                  "xloss::cross_entropy: labels are class indices, not a mask");
                    check_cross_entropy_options(options, m_rows.length, func);
                    if constexpr (soft)
                    {
                        check_soft_targets(targets, options);
                        m_divisor = cross_entropy_divisor(options, static_cast<double>(m_rows.rows));
                    }
                    else
                    {
                        check_labels(targets, m_row_shape, m_shape, func);
                        count_kept(options);
                    }
                }

                const shape_type& shape() const noexcept
                {
                    return m_shape;
                }

                /// The loss's shape: the rows' for `none`, else ().
                shape_type loss_shape() const
                {
                    return reduced() ? shape_type{} : m_row_shape;
                }

                bool reduced() const noexcept
                {
                    return m_options.reduction() != reduction::none;
                }

                double divisor() const noexcept
                {
                    return m_divisor;
                }

                /// What a scalar grad_output is multiplied by: a mean over nothing has no gradient to
                /// give (its rows' gradients are 0).
                double grad_scale() const noexcept
                {
                    return empty() ? 0. : 1. / m_divisor;
                }

                const char* func() const noexcept
                {
                    return m_func;
                }

                /// Whether n elements from p share memory with the logits.
                bool overlaps_inputs(const V* p, std::size_t n) const noexcept
                {
                    const std::size_t bytes = size_of(m_shape) * sizeof(V);
                    if constexpr (soft)
                    {
                        if (overlap_bytes(p, n * sizeof(V), m_labels.data, bytes))
                        {
                            return true;
                        }
                    }
                    return overlap_bytes(p, n * sizeof(V), m_logits.data, bytes);
                }

                /// Runs rows [range.first, range.last) into `out`; returns their sum / divisor (checks
                /// every kept row first with row_checks::before_writing).
                double run(row_range range, const row_outputs<V>& out, row_workspace<compute_t<V>>& workspace,
                           row_checks checks = row_checks::while_running) const
                {
                    if (range.first > range.last || range.last > m_rows.rows)
                    {
                        detail::raise(std::out_of_range(
                            std::string("xloss::") + m_func + ": rows [" + std::to_string(range.first) + ", "
                            + std::to_string(range.last) + ") of a call of " + std::to_string(m_rows.rows) + " rows"));
                    }
                    const cross_entropy_rows<default_batch<compute_t<V>>, label_type, V> rows(
                        source(), cross_entropy_terms_of<compute_t<V>>(m_options, m_rows.length));
                    if (checks == row_checks::before_writing)
                    {
                        rows.check_rows();
                    }
                    const double sum = rows.run(range, out, m_threads, workspace);
                    return empty() ? empty_mean_value(m_options) : sum / m_divisor;
                }

                double run(const row_outputs<V>& out, row_checks checks = row_checks::while_running) const
                {
                    row_workspace<compute_t<V>> workspace;
                    return run(row_range{0, m_rows.rows}, out, workspace, checks);
                }

            private:

                /// Class indices, or for probability targets none (the rows read `targets` instead).
                using label_type = std::conditional_t<soft, long long, LV>;

                cross_entropy_source<V, label_type> source() const noexcept
                {
                    if constexpr (soft)
                    {
                        return {m_logits.data, m_rows,  m_row_shape,  nullptr, m_options.ignore_index(),
                                m_func,        nullptr, m_labels.data};
                    }
                    else
                    {
                        return {m_logits.data, m_rows, m_row_shape, m_labels.values.data, m_options.ignore_index(),
                                m_func};
                    }
                }

                /// Probability targets: of the logits' shape, and no ignore_index (as PyTorch's).
                template <class T>
                void check_soft_targets(const T& targets, const cross_entropy_options& options) const
                {
                    const shape_type got = to_shape(targets.shape());
                    if (got != m_shape)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func
                                                            + ": probability targets of shape " + shape_to_string(got)
                                                            + " and logits of shape " + shape_to_string(m_shape)
                                                            + " differ (class indices are integers)"));
                    }
                    if (options.ignore_index() >= 0)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func + ": ignore_index "
                                                            + std::to_string(options.ignore_index())
                                                            + " is not supported with probability targets"));
                    }
                }

                /// Whether `mean` divides by 0 (no kept row, or kept rows whose weights sum to 0).
                bool empty() const noexcept
                {
                    return m_options.reduction() == reduction::mean && !(m_divisor != 0.);
                }

                static bool overlap_bytes(const void* a, std::size_t n, const void* b, std::size_t m) noexcept
                {
                    const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
                    return a && b && n && m && x < y + m && y < x + n;
                }

                row_layout checked_rows(const cross_entropy_options& options)
                {
                    if (m_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + m_func
                                                            + ": the logits need at least one axis (the classes)"));
                    }
                    const std::ptrdiff_t wanted =
                        m_shape.size() == 1 && !options.class_axis_given() ? 0 : options.class_axis();
                    const std::size_t axis = normalize_axis(wanted, m_shape.size(), m_func, "class_axis");
                    for (std::size_t d = 0; d < m_shape.size(); ++d)
                    {
                        if (d != axis)
                        {
                            m_row_shape.push_back(m_shape[d]);
                        }
                    }
                    return row_layout(m_shape, axis);
                }

                /// Checks each label (ignore_index, or a class) and sums the kept labels' weights.
                void count_kept(const cross_entropy_options& options)
                {
                    double total = 0.;
                    check_label_classes(m_labels.values.data, m_rows.rows, m_rows.length, options.ignore_index(),
                                        m_row_shape, m_func,
                                        [&](std::size_t, LV y)
                                        {
                                            total += label_weight(options, y);
                                        });
                    m_divisor = cross_entropy_divisor(options, total);
                }

                const char* m_func;
                shape_type m_shape;
                shape_type m_row_shape;
                row_layout m_rows;
                contiguous_array<V> m_logits;
                std::conditional_t<soft, contiguous_array<V>, label_store<LV>> m_labels; ///< labels or targets
                const cross_entropy_options& m_options;
                int m_threads;
                double m_divisor = 1.;
            };
        }
    }
}

#endif
