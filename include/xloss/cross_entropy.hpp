/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_CROSS_ENTROPY_HPP
#define XLOSS_CROSS_ENTROPY_HPP

/// @file
/// The cross-entropy from logits and class labels or probability targets: PyTorch's F.cross_entropy,
/// with LM training's z-loss and logit soft-capping.

#include <optional>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "cross_entropy_options.hpp"
#include "detail/core/output.hpp"
#include "detail/cross_entropy/call.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /// @brief The loss and the gradient w.r.t. the logits of a cross-entropy (grad_output 1).
        template <class V>
        struct cross_entropy_result
        {
            xt::xarray<V> loss;        ///< as CrossEntropyLoss's call returns it
            xt::xarray<V> grad_logits; ///< of the logits' shape
        };

        /**
         * @brief The cross-entropy between softmax(x) along the class axis and each row's label:
         *        PyTorch's `torch.nn.CrossEntropyLoss` with class indices.
         *
         * A kept row (its label not `ignore_index`) with label y, class weights w (1 without), label
         * smoothing eps over C classes, z-loss coefficient z and soft-capped logits x' = c tanh(x / c)
         * (x' = x without a cap) has the loss
         * `(1 - eps) w_y (lse - x'_y) + (eps / C) sum_j w_j (lse - x'_j) + z lse^2`, lse = log sum_j e^x'_j;
         * an ignored row has 0 and a zero gradient. `mean` divides the sum by the kept labels' weights
         * (PyTorch's weighted mean; the kept rows without weights) or by the options' `divisor`; when
         * that is 0, the loss is NaN (PyTorch) or 0 (empty_mean::zero), and the gradient 0. Labels are
         * integers over the rows' shape (the logits' shape without the class axis), or any shape with
         * as many elements (read in row-major order); a label that is neither a class nor ignore_index
         * is an error naming its row, as is a kept row of -inf logits or with a +inf logit. Ignored rows
         * are never read.
         *
         * **Probability targets** (PyTorch's soft labels): targets of floating-point type and of the
         * logits' shape, t' = (1 - eps) t + eps / C, give each row
         * `sum_j w_j t'_j (lse - x'_j) + z lse^2`; every row counts, `mean` divides by the number of rows
         * (as PyTorch, whatever the weights) and ignore_index must stay negative. A class whose target is
         * 0 adds nothing, also where its logit is -inf (PyTorch's `0 * -inf` gives NaN there).
         *
         * @code
         * xt::xarray<float> x = {{2.f, 0.5f, -1.f}, {0.f, 1.f, 2.f}};
         * xt::xarray<int> y = {0, 2};
         * float loss = xloss::cross_entropy(x, y)();  // mean over the rows, as F.cross_entropy(x, y)
         * @endcode
         */
        class CrossEntropyLoss
        {
        public:

            /// The options class.
            using options_type = cross_entropy_options;

            /// A loss with the given options.
            explicit CrossEntropyLoss(const cross_entropy_options& options = cross_entropy_options())
                : m_options(options)
            {
            }

            /// The loss's options.
            const cross_entropy_options& options() const noexcept
            {
                return m_options;
            }

            /// The loss: a 0-d array, or for `none` one value per row.
            template <class X, class L>
            auto operator()(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels) const
            {
                return make_call(logits, labels, "cross_entropy").loss();
            }

            /// The gradient w.r.t. the logits for grad_output 1.
            template <class X, class L>
            auto backward(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels) const
            {
                return backward(logits, labels, 1.0);
            }

            /**
             * The gradient w.r.t. the logits for `grad_output`: a scalar or 0-d expression for a reduced
             * loss; for `none`, an expression broadcastable to the rows' shape, or a scalar.
             */
            template <class X, class L, class G>
            auto backward(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels,
                          const G& grad_output) const
            {
                return make_call(logits, labels, "cross_entropy_backward").gradient(grad_output);
            }

            /// The loss and the gradient for grad_output 1, in one set of passes.
            template <class X, class L>
            auto forward_backward(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels) const
            {
                using V = detail::cross_entropy_value_t<X, L>;
                const auto call = make_call(logits, labels, "cross_entropy");
                cross_entropy_result<V> r;
                r.loss = detail::new_array<V>(call.loss_shape());
                r.grad_logits = detail::new_array<V>(call.shape());
                detail::grad_rows<V> spread;
                detail::row_outputs<V> out = call.grad_output(1.0, spread);
                out.loss = call.reduced() ? nullptr : r.loss.data();
                out.grad_student = r.grad_logits.data();
                const double value = call.run(out);
                if (call.reduced())
                {
                    r.loss() = detail::stored_as<V>(value);
                }
                return r;
            }

            /**
             * forward_backward() into the caller's outputs: `loss` (a scalar, or an expression of the
             * loss's shape) and `grad_logits` (of the logits' shape). With contiguous logits and
             * outputs of the right shape it allocates nothing (rows along the last axis; 16-bit logits take rows of
             * float scratch per thread); on an error nothing is written; outputs that share memory with the logits are
             * computed aside first.
             */
            template <class LO, class GO, class X, class L>
            void forward_backward_out(LO& loss, GO& grad_logits, const xt::xexpression<X>& logits,
                                      const xt::xexpression<L>& labels) const
            {
                using V = detail::cross_entropy_value_t<X, L>;
                constexpr const char* func = "CrossEntropyLoss::forward_backward_out";
                const auto call = make_call(logits, labels, func);
                detail::write_out<V>(
                    call, detail::out_args<LO, GO>{loss, grad_logits, func, "grad_logits"},
                    [&]
                    {
                        return forward_backward(logits, labels);
                    },
                    [](const cross_entropy_result<V>& r) -> const xt::xarray<V>&
                    {
                        return r.grad_logits;
                    },
                    [&](const detail::row_outputs<V>& out)
                    {
                        return call.run(out, detail::row_checks::before_writing);
                    });
            }

        private:

            template <class X, class L>
            auto make_call(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels, const char* func) const
            {
                using V = detail::cross_entropy_value_t<X, L>;
                using LV = typename L::value_type;
                return detail::cross_entropy_call<V, LV>(logits.derived_cast(), labels.derived_cast(), m_options, func);
            }

            cross_entropy_options m_options;
        };

        /// @brief The cross-entropy of the logits' rows against class labels (see CrossEntropyLoss).
        template <class X, class L>
        inline auto cross_entropy(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels,
                                  const cross_entropy_options& options = cross_entropy_options())
        {
            return CrossEntropyLoss(options)(logits, labels);
        }

        /// @brief The gradient of cross_entropy() w.r.t. the logits for `grad_output`.
        template <class X, class L, class G>
        inline auto cross_entropy_backward(const xt::xexpression<X>& logits, const xt::xexpression<L>& labels,
                                           const G& grad_output,
                                           const cross_entropy_options& options = cross_entropy_options())
        {
            return CrossEntropyLoss(options).backward(logits, labels, grad_output);
        }
    }
}

#endif
