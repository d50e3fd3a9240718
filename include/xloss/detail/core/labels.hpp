/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_LABELS_HPP
#define XLOSS_DETAIL_CORE_LABELS_HPP

// Token labels of the row losses: one integer per row, in the rows' row-major order; a row whose
// label is ignore_index is left out.

#include <stdexcept>
#include <string>
#include <type_traits>

#include "error.hpp"
#include "expression.hpp"
#include "rows.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// No labels: every row counts.
            struct no_labels
            {
            };

            /// Every row counts.
            struct keep_all
            {
                bool operator()(std::size_t) const noexcept
                {
                    return true;
                }

                /// No labels: never asked for (a loss that needs them rejects the call first).
                long long label(std::size_t) const noexcept
                {
                    return 0;
                }
            };

            /// Rows whose label is not `ignore_index` count (a bool mask: rows marked true).
            template <class L>
            struct keep_labels
            {
                const L* labels;
                long long ignore_index;

                /// Row k's label, as a class index.
                long long label(std::size_t k) const noexcept
                {
                    return static_cast<long long>(labels[k]);
                }

                bool operator()(std::size_t k) const noexcept
                {
                    if constexpr (std::is_same<L, bool>::value)
                    {
                        return labels[k];
                    }
                    else if constexpr (std::is_unsigned<L>::value)
                    {
                        // Compared by value, for every label type: an unsigned label never equals a
                        // negative ignore_index (a uint32 or uint64 holding the bits of -100 is kept).
                        return ignore_index < 0
                               || static_cast<unsigned long long>(labels[k])
                                      != static_cast<unsigned long long>(ignore_index);
                    }
                    else
                    {
                        return static_cast<long long>(labels[k]) != ignore_index;
                    }
                }
            };

            /// Every row counts, with its label: rows already filtered (a fused linear call's chunks).
            template <class L>
            struct keep_all_labelled
            {
                const L* labels;

                bool operator()(std::size_t) const noexcept
                {
                    return true;
                }

                long long label(std::size_t k) const noexcept
                {
                    return static_cast<long long>(labels[k]);
                }
            };

            /// The labels of a call as contiguous data (LV: their value type, void without labels).
            template <class LV>
            struct label_store
            {
                contiguous_array<LV> values;

                template <class E>
                explicit label_store(const E& e)
                    : values(e)
                {
                }

                keep_labels<LV> keep(long long ignore_index) const noexcept
                {
                    return {values.data, ignore_index};
                }
            };

            template <>
            struct label_store<void>
            {
                explicit label_store(const no_labels&) noexcept
                {
                }

                keep_all keep(long long) const noexcept
                {
                    return {};
                }
            };

            template <class L>
            struct label_value
            {
                using type = typename L::value_type;
            };

            template <>
            struct label_value<no_labels>
            {
                using type = void;
            };

            /// Whether a label is below 0 (never, for an unsigned type).
            template <class LV>
            constexpr bool is_negative_label(LV y) noexcept
            {
                if constexpr (std::is_signed<LV>::value)
                {
                    return y < LV(0);
                }
                else
                {
                    (void)y;
                    return false;
                }
            }

            /**
             * Checks that each of `rows` labels is ignore_index or a class in [0, classes); throws
             * std::invalid_argument naming the first other one and its row. Calls f(k, label) for each
             * kept row k.
             */
            template <class LV, class F>
            inline void check_label_classes(const LV* labels, std::size_t rows, std::size_t classes,
                                            long long ignore_index, const shape_type& row_shape, const char* func,
                                            F&& f)
            {
                const keep_labels<LV> keep{labels, ignore_index};
                for (std::size_t k = 0; k < rows; ++k)
                {
                    if (!keep(k))
                    {
                        continue;
                    }
                    const LV y = labels[k];
                    if (is_negative_label(y) || static_cast<unsigned long long>(y) >= classes)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": label " + std::to_string(static_cast<long long>(y))
                            + " of row " + row_index(k, row_shape) + " is not a class of " + std::to_string(classes)
                            + " nor ignore_index (" + std::to_string(ignore_index) + ")"));
                    }
                    f(k, y);
                }
            }

            /**
             * Checks labels against the rows' shape (the logits' shape `shape` without the class axis):
             * that shape, or any shape of as many elements, read in row-major order (torchtune's
             * flattened (B*S, V) logits with (B, S) labels).
             */
            template <class L>
            inline void check_labels(const L& labels, const shape_type& row_shape, const shape_type& shape,
                                     const char* func)
            {
                if constexpr (!std::is_same<L, no_labels>::value)
                {
                    static_assert(std::is_integral<typename L::value_type>::value,
                                  "xloss: labels must hold integers (or bool)");
                    const shape_type got = to_shape(labels.shape());
                    if (got != row_shape && size_of(got) != size_of(row_shape))
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": labels of shape " + shape_to_string(got)
                            + " do not match the rows of the logits, of shape " + shape_to_string(row_shape)
                            + " (the logits' shape " + shape_to_string(shape)
                            + " without the class axis), nor have as many elements"));
                    }
                }
            }
        }
    }
}

#endif
