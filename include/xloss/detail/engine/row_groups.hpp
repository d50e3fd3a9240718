/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_GROUPS_HPP
#define XLOSS_DETAIL_ENGINE_ROW_GROUPS_HPP

// How the row engines run a range of rows: in fixed groups of rows shared out to OpenMP threads,
// each thread with its own scratch from a workspace kept between runs, each row's value in its
// own slot, summed in row order after the group; a fault is raised for the first faulty row in
// row order. The results therefore do not depend on the thread count.

#include <algorithm>
#include <cstddef>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Rows [first, last) of a run.
            struct row_range
            {
                std::size_t first;
                std::size_t last;
            };

            /// Why a row's softmax is undefined; teacher_bit marks the teacher's row.
            enum class row_fault : int
            {
                none = 0,
                pos_inf = 1,
                all_neg_inf = 2,
                spread = 3 ///< (max - min) / T of its finite logits beyond the value type's range
            };

            constexpr int teacher_bit = 4;

            /// Scratch kept between runs: a run takes what it needs, and the workspace allocates only
            /// when a run needs more than any before it (runs fed chunk by chunk allocate once).
            template <class V>
            class row_workspace
            {
            public:

                V* take(std::size_t values)
                {
                    if (m_values.size() < values)
                    {
                        m_values.resize(values);
                    }
                    return m_values.data();
                }

            private:

                std::vector<V> m_values;
            };

            /// ws soft + wh hard, a part of weight 0 left out (an infinite part of weight 0 is not NaN).
            inline double weighted_sum(double ws, double soft, double wh, double hard) noexcept
            {
                return (ws == 0. ? 0. : ws * soft) + (wh == 0. ? 0. : wh * hard);
            }

            /// The threads of a run, and the scratch each takes (values of V).
            struct row_team
            {
                int threads;
                std::size_t area;
            };

            /// The team a thread count asks for (1 without OpenMP).
            inline int team_size(int threads) noexcept
            {
#ifdef _OPENMP
                return threads > 1 ? threads : 1;
#else
                (void)threads;
                return 1;
#endif
            }

            /**
             * Runs rows [range.first, range.last): `row(k, scratch, fault)` computes row k with its
             * thread's scratch (team.area values; null when 0) and returns its value, setting `fault`
             * when the row cannot be computed; `raise(fault, k)` throws for the first such row in row
             * order. Returns the rows' values summed in row order.
             */
            template <class V, class Row, class Raise>
            double run_row_groups(row_range range, const row_team& team, row_workspace<V>& workspace, const Row& row,
                                  const Raise& raise)
            {
                constexpr std::size_t group = 256;
                V* const buf = workspace.take(team.area * static_cast<std::size_t>(team.threads));
                double partial[group];
                row_fault faults[group];
                double total = 0.;
                for (std::size_t first = range.first; first < range.last; first += group)
                {
                    const auto count = static_cast<std::ptrdiff_t>(std::min(group, range.last - first));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(team.threads) if (team.threads > 1)
#endif
                    for (std::ptrdiff_t j = 0; j < count; ++j)
                    {
                        std::size_t thread = 0;
#ifdef _OPENMP
                        thread = static_cast<std::size_t>(omp_get_thread_num());
#endif
                        faults[j] = row_fault::none;
                        partial[j] = row(first + static_cast<std::size_t>(j),
                                         team.area ? buf + thread * team.area : nullptr, faults[j]);
                    }
                    for (std::ptrdiff_t j = 0; j < count; ++j)
                    {
                        if (faults[j] != row_fault::none)
                        {
                            raise(faults[j], first + static_cast<std::size_t>(j));
                        }
                        total += partial[j];
                    }
                }
                return total;
            }
        }
    }
}

#endif
