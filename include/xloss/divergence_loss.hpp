/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DIVERGENCE_LOSS_HPP
#define XLOSS_DIVERGENCE_LOSS_HPP

/// @file
/// The module every divergence from logits shares: ForwardKLLoss, ReverseKLLoss,
/// GeneralizedJSDLoss and SymmetricKLLoss are this class template with their row policy and options.

#include <optional>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/core/output.hpp"
#include "detail/divergence/call.hpp"
#include "detail/divergence/top_k_call.hpp"
#include "detail/engine/row_call.hpp"
#include "distill_options.hpp"
#include "divergence_result.hpp"
#include "top_k.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /// Stands for "no labels: every row counts" where an argument list needs labels.
        inline constexpr detail::no_labels all_rows{};

        namespace detail
        {
            template <class E>
            inline decltype(auto) labels_arg(const xt::xexpression<E>& e) noexcept
            {
                return e.derived_cast();
            }

            inline const no_labels& labels_arg(const no_labels& l) noexcept
            {
                return l;
            }

            template <class S, class T>
            using divergence_value_t = row_value_t<S, T>;
        }

        /**
         * @brief A divergence between the teacher's and the student's softmax along an axis of their
         *        logits, row by row, with token labels: `T^2 D(softmax(t / T) || softmax(s / T))` per row.
         *
         * `Policy` is the divergence's row policy (detail::forward_kl_policy, reverse_kl_policy,
         * jsd_policy), `Options` its options. Labels are integers over the rows' shape (the logits'
         * shape without the class axis); a row whose label is `ignore_index` contributes 0 and gets a
         * zero gradient (a bool mask works too: true keeps the row). Ignored rows are never read, so
         * padding may hold anything, `-inf` rows included.
         */
        template <class Policy, class Options>
        class divergence_loss
        {
        public:

            /// The options class.
            using options_type = Options;

            /// A loss with the given options.
            explicit divergence_loss(const Options& options = Options()) noexcept
                : m_options(options)
            {
            }

            /// The loss's options.
            const Options& options() const noexcept
            {
                return m_options;
            }

            /// The loss; `labels` is all_rows or an integer expression over the rows' shape.
            template <class S, class T, class L = detail::no_labels>
            auto operator()(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                            const L& labels = all_rows) const
            {
                using V = detail::divergence_value_t<S, T>;
                const auto call = make_call<V>(student_logits, teacher_logits, labels, name());
                return with_policy(
                    [&](const auto& policy)
                    {
                        return call.loss(policy);
                    });
            }

            /// The student's gradient for grad_output 1.
            template <class S, class T, class L = detail::no_labels>
            auto backward(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                          const L& labels = all_rows) const
            {
                return backward(student_logits, teacher_logits, labels, 1.0);
            }

            /**
             * The student's gradient for `grad_output`: a scalar or 0-d expression for a reduced loss;
             * for `none`, an expression broadcastable to the rows' shape, or a scalar.
             */
            template <class S, class T, class L, class G>
            auto backward(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                          const L& labels, const G& grad_output) const
            {
                using V = detail::divergence_value_t<S, T>;
                const auto call = make_call<V>(student_logits, teacher_logits, labels, name());
                return with_policy(
                    [&](const auto& policy)
                    {
                        return call.gradient(policy, grad_output, detail::wrt::student);
                    });
            }

            /// The loss and the student's gradient (and the teacher's with options().teacher_grad())
            /// for grad_output 1, in one set of passes.
            template <class S, class T, class L = detail::no_labels>
            auto forward_backward(const xt::xexpression<S>& student_logits, const xt::xexpression<T>& teacher_logits,
                                  const L& labels = all_rows) const
            {
                using V = detail::divergence_value_t<S, T>;
                const auto call = make_call<V>(student_logits, teacher_logits, labels, name());
                return with_policy(
                    [&](const auto& policy)
                    {
                        return call.forward_backward(policy, m_options.teacher_grad());
                    });
            }

            /**
             * forward_backward() into the caller's outputs: `loss` (a scalar, or an expression of the
             * loss's shape) and `grad_student` (of the logits' shape). With contiguous logits and
             * outputs of the right shape it allocates nothing (16-bit logits: rows of float scratch per thread);
             * outputs xtensor would resize are resized; on an error nothing is written. Outputs that share memory with
             * the logits
             * (`forward_backward_out(loss, s, s, t)`) are computed aside first.
             */
            template <class LO, class GO, class S, class T, class L = detail::no_labels>
            void forward_backward_out(LO& loss, GO& grad_student, const xt::xexpression<S>& student_logits,
                                      const xt::xexpression<T>& teacher_logits, const L& labels = all_rows) const
            {
                using V = detail::divergence_value_t<S, T>;
                const auto call = make_call<V>(student_logits, teacher_logits, labels, name());
                detail::write_out<V>(
                    call, detail::out_args<LO, GO>{loss, grad_student, Policy::out_name, "grad_student"},
                    [&]
                    {
                        return forward_backward(student_logits, teacher_logits, labels);
                    },
                    student_grad_of<V>,
                    [&](const detail::row_outputs<V>& out)
                    {
                        return run(call, out, detail::row_checks::before_writing, detail::row_memory::none);
                    });
            }

            /**
             * @name From a top-k teacher (the forward KL only)
             * The teacher as top_k(ids, log_probs), both of shape (rows..., k), against the student's full
             * softmax over the last axis (see top_k_tail for the mass outside the k classes). Ids out of
             * range or repeated in a kept row are an error naming the row; there is no teacher gradient.
             * The `_out` call allocates one byte per class (the ids' check), and 2k values per row for k above 256.
             */
            ///@{
            /// The loss.
            template <class S, class I, class LP, class L = detail::no_labels>
            auto operator()(const xt::xexpression<S>& student_logits, const top_k_teacher<I, LP>& teacher,
                            const L& labels = all_rows) const
            {
                return top_k_call<detail::loss_value_t<S, LP>>(student_logits, teacher, labels, name()).loss();
            }

            /// The student's gradient for grad_output 1.
            template <class S, class I, class LP, class L = detail::no_labels>
            auto backward(const xt::xexpression<S>& student_logits, const top_k_teacher<I, LP>& teacher,
                          const L& labels = all_rows) const
            {
                return backward(student_logits, teacher, labels, 1.0);
            }

            /// The student's gradient for `grad_output`.
            template <class S, class I, class LP, class L, class G>
            auto backward(const xt::xexpression<S>& student_logits, const top_k_teacher<I, LP>& teacher,
                          const L& labels, const G& grad_output) const
            {
                return top_k_call<detail::loss_value_t<S, LP>>(student_logits, teacher, labels, name())
                    .gradient(grad_output);
            }

            /// The loss and the student's gradient for grad_output 1.
            template <class S, class I, class LP, class L = detail::no_labels>
            auto forward_backward(const xt::xexpression<S>& student_logits, const top_k_teacher<I, LP>& teacher,
                                  const L& labels = all_rows) const
            {
                return top_k_call<detail::loss_value_t<S, LP>>(student_logits, teacher, labels, name())
                    .forward_backward();
            }

            /// forward_backward() into the caller's outputs.
            template <class LO, class GO, class S, class I, class LP, class L = detail::no_labels>
            void forward_backward_out(LO& loss, GO& grad_student, const xt::xexpression<S>& student_logits,
                                      const top_k_teacher<I, LP>& teacher, const L& labels = all_rows) const
            {
                using V = detail::loss_value_t<S, LP>;
                const auto call = top_k_call<V>(student_logits, teacher, labels, Policy::out_name);
                detail::write_out<V>(
                    call, detail::out_args<LO, GO>{loss, grad_student, Policy::out_name, "grad_student"},
                    [&]
                    {
                        return forward_backward(student_logits, teacher, labels);
                    },
                    student_grad_of<V>,
                    [&](const detail::row_outputs<V>& out)
                    {
                        return call.run(out, detail::row_checks::before_writing);
                    });
            }
            ///@}

        private:

            template <class V, class S, class I, class LP, class L>
            auto top_k_call(const xt::xexpression<S>& s, const top_k_teacher<I, LP>& teacher, const L& labels,
                            const char* func) const
            {
                static_assert(std::is_same<Policy, detail::forward_kl_policy>::value,
                              "xloss: a top-k teacher is defined for the forward KL only (ForwardKLLoss)");
                const auto& l = detail::labels_arg(labels);
                using LV = typename detail::label_value<std::decay_t<decltype(l)>>::type;
                return detail::top_k_call<V, typename I::value_type, LV>(s.derived_cast(), teacher.ids,
                                                                         teacher.log_probs, l, m_options, func);
            }

            static const char* name() noexcept
            {
                return Policy::name;
            }

            template <class V>
            static const xt::xarray<V>& student_grad_of(const divergence_result<V>& r) noexcept
            {
                return r.grad_student;
            }

            template <class V, class S, class T, class L>
            auto make_call(const xt::xexpression<S>& s, const xt::xexpression<T>& t, const L& labels,
                           const char* func) const
            {
                const auto& l = detail::labels_arg(labels);
                using LV = typename detail::label_value<std::decay_t<decltype(l)>>::type;
                return detail::divergence_call<V, LV>(s.derived_cast(), t.derived_cast(), l, m_options, func);
            }

            /// f(policy) with the row policy the options select.
            template <class F>
            decltype(auto) with_policy(F&& f) const
            {
                return detail::with_policy<Policy>(m_options, f);
            }

            template <class C, class V>
            double run(const C& call, const detail::row_outputs<V>& out, detail::row_checks checks,
                       detail::row_memory memory) const
            {
                return with_policy(
                    [&](const auto& policy)
                    {
                        return call.run(policy, out, checks, memory);
                    });
            }

            /// The options.
            Options m_options;
        };
    }
}

#endif
