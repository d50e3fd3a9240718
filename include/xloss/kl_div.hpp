/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_HPP
#define XLOSS_KL_DIV_HPP

/// @file
/// The Kullback-Leibler divergence loss and its gradients, as functions.

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/kl_div/definition.hpp"
#include "kl_div_options.hpp"
#include "pointwise_loss.hpp"
#include "reduction.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @defgroup kl_div KL-divergence loss
         * @brief PyTorch's `kl_div` over xtensor expressions, with an analytic backward.
         *
         * `input` holds log-probabilities x; `target` holds probabilities t, or
         * log-probabilities when `log_target` is set. The pointwise term is
         * `t * (log t - x)`, or `exp(t) * (t - x)` with `log_target`; a zero target
         * (`-inf` with `log_target`) contributes exactly 0, also where x = -inf.
         * Input and target broadcast with NumPy rules. Arguments are any xtensor
         * expressions of float or double; mixed float and double compute in double.
         * @{
         */

        /**
         * @brief The KL-divergence loss.
         * @param input log-probabilities x
         * @param target probabilities t (log-probabilities when `log_target`)
         * @param r the reduction: `none` gives the terms in the broadcast shape; `mean`,
         *        `sum` and `batchmean` give a 0-d array
         * @param log_target whether `target` holds log-probabilities
         * @return an `xt::xarray` of the promoted value type
         * @throw std::invalid_argument if input and target do not broadcast
         *
         * @code
         * xt::xarray<float> x = xt::log(xt::xarray<float>{{0.2f, 0.8f}, {0.5f, 0.5f}});
         * xt::xarray<float> t = {{0.1f, 0.9f}, {0.6f, 0.4f}};
         * float loss = xloss::kl_div(x, t, xloss::reduction::batchmean)();
         * @endcode
         */
        template <class E1, class E2>
        auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, reduction r = reduction::mean,
                    bool log_target = false);

        /// @brief The KL-divergence loss with its options in one object.
        template <class E1, class E2>
        auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, const kl_div_options& options);

        /**
         * @brief The gradient of kl_div() with respect to `input`.
         * @param grad_output the gradient of the loss: for a reduced loss a 0-d
         *        expression or a scalar; for `none` an expression broadcastable to the
         *        loss's shape, or a scalar
         * @return `-t * grad_output` (`-exp(t) * grad_output` with `log_target`) divided by the
         *         reduction's divisor, summed over broadcast axes to the shape of `input`;
         *         0 where the target is zero
         * @throw std::invalid_argument if the shapes do not broadcast, or grad_output does not fit
         */
        template <class G, class E1, class E2>
        auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             reduction r = reduction::mean, bool log_target = false);

        /// @brief kl_div_backward() with its options in one object.
        template <class G, class E1, class E2>
        auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const kl_div_options& options);

        /**
         * @brief The gradient of kl_div() with respect to `target`.
         * @return `(log t + 1 - x) * grad_output` (`exp(t) * (t - x + 1) * grad_output` with
         *         `log_target`) divided by the reduction's divisor, summed over broadcast axes to
         *         the shape of `target`; 0 where the target is zero (PyTorch gives NaN there)
         * @throw std::invalid_argument if the shapes do not broadcast, or grad_output does not fit
         */
        template <class G, class E1, class E2>
        auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, reduction r = reduction::mean,
                                    bool log_target = false);

        /// @brief kl_div_target_backward() with its options in one object.
        template <class G, class E1, class E2>
        auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, const kl_div_options& options);

        /**
         * @brief The loss with a sample weight: each term times `sample_weight`, an expression that
         *        broadcasts to the shape of input and target (MXNet's `sample_weight`), before the reduction.
         */
        template <class E1, class E2, class W>
        auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, const kl_div_options& options,
                    const xt::xexpression<W>& sample_weight);

        /// @brief kl_div_backward() of the loss with a sample weight.
        template <class G, class E1, class E2, class W>
        auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const kl_div_options& options, const xt::xexpression<W>& sample_weight);

        /// @brief kl_div_target_backward() of the loss with a sample weight.
        template <class G, class E1, class E2, class W>
        auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, const kl_div_options& options,
                                    const xt::xexpression<W>& sample_weight);

        /** @} */

        template <class E1, class E2, class W>
        inline auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                           const kl_div_options& options, const xt::xexpression<W>& sample_weight)
        {
            return pointwise::loss(input, target, options, sample_weight);
        }

        template <class G, class E1, class E2, class W>
        inline auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, const kl_div_options& options,
                                    const xt::xexpression<W>& sample_weight)
        {
            return pointwise::backward(grad_output, input, target, options, sample_weight);
        }

        template <class G, class E1, class E2, class W>
        inline auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                           const xt::xexpression<E2>& target, const kl_div_options& options,
                                           const xt::xexpression<W>& sample_weight)
        {
            return pointwise::target_backward(grad_output, input, target, options, sample_weight);
        }

        template <class E1, class E2>
        inline auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                           const kl_div_options& options)
        {
            return pointwise::loss(input, target, options);
        }

        template <class E1, class E2>
        inline auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, reduction r,
                           bool log_target)
        {
            return kl_div(input, target, kl_div_options(r, log_target));
        }

        template <class G, class E1, class E2>
        inline auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            return pointwise::backward(grad_output, input, target, options);
        }

        template <class G, class E1, class E2>
        inline auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                    const xt::xexpression<E2>& target, reduction r, bool log_target)
        {
            return kl_div_backward(grad_output, input, target, kl_div_options(r, log_target));
        }

        template <class G, class E1, class E2>
        inline auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                           const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            return pointwise::target_backward(grad_output, input, target, options);
        }

        template <class G, class E1, class E2>
        inline auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                           const xt::xexpression<E2>& target, reduction r, bool log_target)
        {
            return kl_div_target_backward(grad_output, input, target, kl_div_options(r, log_target));
        }
    }
}

#endif
