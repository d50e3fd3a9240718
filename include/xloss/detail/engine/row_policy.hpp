/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_POLICY_HPP
#define XLOSS_DETAIL_ENGINE_ROW_POLICY_HPP

// What the row engine asks of a divergence D = sum_j f(p_j, q_j) between the teacher's
// distribution P and the student's Q along a row: a row policy is a callable
//   divergence_terms<B> operator()(log p, log q, p, q) const
// giving, per class, the term f(p, q), the student's pull q df/dq and the teacher's pull p df/dp
// (the engine turns pulls into gradients through the softmax), plus a `name`.
//
// A policy may also offer a loss-only phase that needs no pass of its own: with the shifted,
// scaled logits a = (t - max t) / T and b = (s - max s) / T and their exponentials, `shifted`
// gives the N values per class (shifted_sums<B, N>, as many as the policy needs) that the engine
// sums in its partition-sum pass; `row_value(totals, Zq, Zp)` turns their totals and the two
// partition sums into the row's divergence, and `pull_sums(totals, Zq, Zp, value)` gives the sums
// of the pulls from them. The engine then reads a row for the loss twice (max, sums) instead of
// three times, and writes gradients in one more pass.
//
// A policy is built from the loss's options: by its static `with_options(options, f)`, which calls
// f with the policy the options select (the generalized JSD's ends are the forward and the reverse
// KL), or, when it declares none, as `f(Policy{})` (detail::with_policy). Options check their
// values where they are set, so that a policy needs no check of its own.

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "../../xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The pointwise values of one class for the row engine.
            template <class B>
            struct divergence_terms
            {
                B term;
                B pull_student;
                B pull_teacher;
            };

            /// What a loss-only phase sums over a row, batch by batch: N values per class.
            template <class B, std::size_t N>
            using shifted_sums = std::array<B, N>;

            /// The totals over a row of a loss-only phase's N sums.
            template <std::size_t N>
            using shifted_totals = std::array<double, N>;

            /// The sums over a row of the student's and the teacher's pulls.
            struct row_pull_sums
            {
                double student;
                double teacher;
            };

            /// Whether Policy has the loss-only phase (shifted, row_value and pull_sums).
            template <class Policy, class B, class = void>
            struct has_loss_phase : std::false_type
            {
            };

            template <class Policy, class B>
            struct has_loss_phase<Policy, B,
                                  std::void_t<decltype(std::declval<const Policy&>().shifted(
                                      std::declval<const B&>(), std::declval<const B&>(), std::declval<const B&>(),
                                      std::declval<const B&>()))>> : std::true_type
            {
            };

            /// The number of sums of Policy's loss-only phase.
            template <class Policy, class B>
            inline constexpr std::size_t shifted_count = std::tuple_size<decltype(std::declval<const Policy&>().shifted(
                std::declval<const B&>(), std::declval<const B&>(), std::declval<const B&>(),
                std::declval<const B&>()))>::value;

            /// A callable taking any policy: what with_options is probed with.
            struct any_policy_sink
            {
                template <class P>
                int operator()(const P&) const noexcept
                {
                    return 0;
                }
            };

            /// Whether Policy builds itself from the loss's options (a static with_options).
            template <class Policy, class Options, class = void>
            struct builds_from_options : std::false_type
            {
            };

            template <class Policy, class Options>
            struct builds_from_options<Policy, Options,
                                       std::void_t<decltype(Policy::with_options(std::declval<const Options&>(),
                                                                                 any_policy_sink{}))>>
                : std::true_type
            {
            };

            /// Calls f with the row policy the options select (see above).
            template <class Policy, class Options, class F>
            inline decltype(auto) with_policy(const Options& options, F&& f)
            {
                if constexpr (builds_from_options<Policy, Options>::value)
                {
                    return Policy::with_options(options, std::forward<F>(f));
                }
                else
                {
                    return f(Policy{});
                }
            }
        }
    }
}

#endif
