/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FUSED_LINEAR_CROSS_ENTROPY_HPP
#define XLOSS_FUSED_LINEAR_CROSS_ENTROPY_HPP

/// @file
/// The cross-entropy of a linear layer's logits, computed from its input chunk by chunk: Liger-Kernel's
/// LigerFusedLinearCrossEntropyLoss and Apple's Cut Cross-Entropy, on the CPU. Needs a CBLAS (CMake
/// target xloss::linear).

#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "cross_entropy_options.hpp"
#include "detail/cross_entropy/linear_call.hpp"
#include "detail/linear/outputs.hpp"
#include "fused_linear_options.hpp"
#include "fused_linear_result.hpp"
#include "linear_head.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The cross-entropy of the logits `h W^T + b` of hidden states h against class labels,
         *        with its gradients w.r.t. h, W and b, never holding the (rows x classes) logits.
         *
         * The loss is cross_entropy(h W^T + b, labels) along the logits' last axis, with every option
         * of cross_entropy_options (ignore_index, label_smoothing, weight, z_loss, softcap, reductions
         * none, mean and sum, empty_mean, divisor, num_threads): PyTorch's
         * `F.cross_entropy(F.linear(h, W, b), labels)`. h is (rows..., hidden), W (classes, hidden) as
         * PyTorch's `lm_head.weight`, b (classes); labels as for cross_entropy().
         *
         * The kept rows (labels not ignore_index) run in chunks (fused_linear_options): per chunk one
         * product for the logits, the cross-entropy's passes over them, and for the gradients one
         * product each for h and W, on the system's BLAS (cblas_sgemm / cblas_dgemm, with its own threads;
         * num_threads is the threads of the row passes). Ignored rows never enter a product; their
         * gradient rows are 0. The gradients are those of the loss (for `none`, of the rows' sum), written
         * or added (fused_linear_options::gradient_write).
         *
         * @code
         * xt::xarray<float> h = xt::random::randn<float>({8, 64});      // tokens x hidden
         * xt::xarray<float> w = xt::random::randn<float>({1000, 64});   // classes x hidden
         * xt::xarray<int> y = xt::random::randint<int>({8}, 0, 1000);
         * auto r = xloss::fused_linear_cross_entropy_forward_backward(h, xloss::linear(w), y);
         * // r.loss(), r.grad_hidden (8, 64), r.grad_weight (1000, 64)
         * @endcode
         */
        class FusedLinearCrossEntropyLoss
        {
        public:

            /// The options class.
            using options_type = cross_entropy_options;

            /// A loss with the given options.
            explicit FusedLinearCrossEntropyLoss(const cross_entropy_options& options = cross_entropy_options(),
                                                 const fused_linear_options& linear = fused_linear_options())
                : m_options(options)
                , m_linear(linear)
            {
            }

            /// The loss's options.
            const cross_entropy_options& options() const noexcept
            {
                return m_options;
            }

            /// The chunking and output options.
            const fused_linear_options& linear_options() const noexcept
            {
                return m_linear;
            }

            /// The loss: a 0-d array, or for `none` one value per row.
            template <class H, class Head, class L>
            auto operator()(const xt::xexpression<H>& hidden, const Head& head, const xt::xexpression<L>& labels) const
            {
                return detail::linear_loss<value_type<H, Head>>(
                    make_call(hidden, head, labels, "fused_linear_cross_entropy"));
            }

            /// The loss and its gradients w.r.t. the hidden states, the weight and the bias.
            template <class H, class Head, class L>
            auto forward_backward(const xt::xexpression<H>& hidden, const Head& head,
                                  const xt::xexpression<L>& labels) const
            {
                fused_linear_result<value_type<H, Head>> r;
                fused_linear_workspace<value_type<H, Head>> ws;
                forward_backward_out(hidden, head, labels, r, ws);
                return r;
            }

            /**
             * forward_backward() into `result`, with the scratch of `workspace`: result arrays of the
             * right shape are written in place (the gradients added to, with gradient_write::accumulate;
             * the loss always replaced), others are replaced (the gradients by zeros first when
             * accumulating). With both kept between training steps, and contiguous inputs of the
             * result's value type, it allocates nothing. A result that shares memory with an input is
             * computed aside first. A row whose logits hold +inf is an error raised when its chunk is
             * reached: earlier chunks' gradients are then already written (or added).
             */
            template <class H, class Head, class L, class V>
            void forward_backward_out(const xt::xexpression<H>& hidden, const Head& head,
                                      const xt::xexpression<L>& labels, fused_linear_result<V>& result,
                                      fused_linear_workspace<V>& workspace) const
            {
                static_assert(std::is_same<V, value_type<H, Head>>::value,
                              "xloss::FusedLinearCrossEntropyLoss::forward_backward_out: the result's value type "
                              "is that of the inputs");
                detail::linear_forward_backward_out(
                    make_call(hidden, head, labels, "FusedLinearCrossEntropyLoss::forward_backward_out"), result,
                    workspace, m_linear.gradient_write());
            }

        private:

            template <class H, class Head>
            using value_type = detail::linear_value_t<H, Head>;

            template <class H, class Head, class L>
            auto make_call(const xt::xexpression<H>& hidden, const Head& head, const xt::xexpression<L>& labels,
                           const char* func) const
            {
                using V = value_type<H, Head>;
                using LV = typename L::value_type;
                return detail::linear_cross_entropy_call<V, LV>(hidden.derived_cast(), head, labels.derived_cast(),
                                                                m_options, m_linear, func);
            }

            cross_entropy_options m_options;
            fused_linear_options m_linear;
        };

        /// @brief The fused linear cross-entropy's loss (see FusedLinearCrossEntropyLoss).
        template <class H, class Head, class L>
        inline auto fused_linear_cross_entropy(const xt::xexpression<H>& hidden, const Head& head,
                                               const xt::xexpression<L>& labels,
                                               const cross_entropy_options& options = cross_entropy_options(),
                                               const fused_linear_options& linear = fused_linear_options())
        {
            return FusedLinearCrossEntropyLoss(options, linear)(hidden, head, labels);
        }

        /// @brief The fused linear cross-entropy's loss and gradients (see FusedLinearCrossEntropyLoss).
        template <class H, class Head, class L>
        inline auto fused_linear_cross_entropy_forward_backward(
            const xt::xexpression<H>& hidden, const Head& head, const xt::xexpression<L>& labels,
            const cross_entropy_options& options = cross_entropy_options(),
            const fused_linear_options& linear = fused_linear_options())
        {
            return FusedLinearCrossEntropyLoss(options, linear).forward_backward(hidden, head, labels);
        }
    }
}

#endif
