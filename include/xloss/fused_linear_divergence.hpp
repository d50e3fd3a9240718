/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FUSED_LINEAR_DIVERGENCE_HPP
#define XLOSS_FUSED_LINEAR_DIVERGENCE_HPP

/// @file
/// The divergences of LM distillation from the student's hidden states and output layer, chunk by
/// chunk: Liger-Kernel's LigerFusedLinearJSDLoss and its siblings, on the CPU. Needs a CBLAS (CMake
/// target xloss::linear).

#include <string>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/divergence/linear_call.hpp"
#include "detail/divergence/policies.hpp"
#include "detail/linear/outputs.hpp"
#include "distill_options.hpp"
#include "divergence_loss.hpp"
#include "fused_linear_options.hpp"
#include "fused_linear_result.hpp"
#include "linear_head.hpp"
#include "top_k.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief A divergence between the teacher's and the student's softmax, as divergence_loss
         *        computes it from logits, with the student's logits `h W^T + b` computed from its hidden
         *        states chunk by chunk, never held whole; gradients w.r.t. h, W and b (none for the
         *        teacher).
         *
         * The teacher is teacher_layer(teacher_h, linear(teacher_W[, b])) (its logits computed chunk by
         * chunk too; its hidden size may differ), its logits (rows..., classes), of which each chunk's
         * rows are read, or, for the forward KL, top_k(ids, log_probs) of shape (rows..., k) (no teacher
         * product at all; see ForwardKLLoss and top_k_tail). A teacher with more classes than the student (Qwen2.5-7B's
         * 152064 against 151936: rows of padding in its embedding) gives its first ones, as many as the student's; a
         * teacher with fewer is an error. Options are the divergence's (temperature and its scale, beta
         * or ratio, ignore_index with labels, weight_hard / weight_soft with class labels, reductions,
         * divisor, num_threads; teacher_grad, row_input::log_probs and a class axis other than the
         * last are errors), and fused_linear_options. Rows whose label is ignore_index never enter a
         * product. The value type is the student's (h and W): a teacher of another float type is
         * converted to it.
         */
        template <class Policy, class Options>
        class fused_linear_divergence_loss
        {
        public:

            /// The options class.
            using options_type = Options;

            /// A loss with the given options.
            explicit fused_linear_divergence_loss(const Options& options = Options(),
                                                  const fused_linear_options& linear = fused_linear_options())
                : m_options(options)
                , m_linear(linear)
            {
            }

            /// The loss's options.
            const Options& options() const noexcept
            {
                return m_options;
            }

            /// The chunking and output options.
            const fused_linear_options& linear_options() const noexcept
            {
                return m_linear;
            }

            /// The loss: a 0-d array, or for `none` one value per row.
            template <class H, class Head, class T, class L = detail::no_labels>
            auto operator()(const xt::xexpression<H>& hidden, const Head& head, const T& teacher,
                            const L& labels = all_rows) const
            {
                return detail::linear_loss<detail::linear_value_t<H, Head>>(
                    make_call(hidden, head, teacher, labels, name()));
            }

            /// The loss and its gradients w.r.t. the student's hidden states, weight and bias.
            template <class H, class Head, class T, class L = detail::no_labels>
            auto forward_backward(const xt::xexpression<H>& hidden, const Head& head, const T& teacher,
                                  const L& labels = all_rows) const
            {
                using V = detail::linear_value_t<H, Head>;
                fused_linear_result<V> r;
                fused_linear_workspace<V> ws;
                forward_backward_out(hidden, head, teacher, labels, r, ws);
                return r;
            }

            /// forward_backward() into `result` with `workspace` (see FusedLinearCrossEntropyLoss).
            template <class H, class Head, class T, class L, class V>
            void forward_backward_out(const xt::xexpression<H>& hidden, const Head& head, const T& teacher,
                                      const L& labels, fused_linear_result<V>& result,
                                      fused_linear_workspace<V>& workspace) const
            {
                static_assert(std::is_same<V, detail::linear_value_t<H, Head>>::value,
                              "xloss::fused_linear_divergence_loss::forward_backward_out: the result's value type "
                              "is that of the inputs");
                detail::linear_forward_backward_out(make_call(hidden, head, teacher, labels, name()), result, workspace,
                                                    m_linear.gradient_write());
            }

        private:

            template <class H, class Head, class T, class L>
            auto make_call(const xt::xexpression<H>& hidden, const Head& head, const T& teacher, const L& labels,
                           const char* func) const
            {
                using V = detail::linear_value_t<H, Head>;
                static_assert(detail::require_loss_values<typename teacher_values<T>::type>(),
                              "xloss: a fused linear divergence's teacher holds float or double values");
                const auto& l = detail::labels_arg(labels);
                using LV = typename detail::label_value<std::decay_t<decltype(l)>>::type;
                static_assert(!is_top_k_teacher<T>::value || std::is_same<Policy, detail::forward_kl_policy>::value,
                              "xloss: a top-k teacher is defined for the forward KL only");
                return detail::linear_divergence_call<V, LV, Policy, Options, T>(hidden.derived_cast(), head, teacher,
                                                                                 l, m_options, m_linear, func);
            }

            /// The value type of a teacher's logits or of its layer's weight.
            template <class T, class = void>
            struct teacher_values
            {
                using type = typename T::value_type;
            };

            template <class H, class Head>
            struct teacher_values<linear_teacher<H, Head>>
            {
                using type = detail::linear_value_t<H, Head>;
            };

            template <class Ids, class LP>
            struct teacher_values<top_k_teacher<Ids, LP>>
            {
                using type = typename LP::value_type;
            };

            /// "fused_linear_" and the divergence's name, for messages.
            static const char* name()
            {
                static const std::string n = std::string("fused_linear_") + Policy::name;
                return n.c_str();
            }

            /// The options.
            Options m_options;
            fused_linear_options m_linear;
        };

        /// @brief The forward KL `T^2 KL(P || Q)` from the student's hidden states (see ForwardKLLoss).
        using FusedLinearForwardKLLoss = fused_linear_divergence_loss<detail::forward_kl_policy, distill_options>;

        /// @brief The reverse KL `T^2 KL(Q || P)` from the student's hidden states (see ReverseKLLoss).
        using FusedLinearReverseKLLoss = fused_linear_divergence_loss<detail::reverse_kl_policy, distill_options>;

        /// @brief The generalized JSD from the student's hidden states (see GeneralizedJSDLoss):
        ///        Liger-Kernel's LigerFusedLinearJSDLoss.
        using FusedLinearGeneralizedJSDLoss = fused_linear_divergence_loss<detail::jsd_policy, jsd_options>;

        /// @brief The symmetric KL from the student's hidden states (see SymmetricKLLoss).
        using FusedLinearSymmetricKLLoss =
            fused_linear_divergence_loss<detail::symmetric_kl_policy, symmetric_kl_options>;
    }
}

#endif
