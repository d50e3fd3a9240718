/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_WITH_LOGITS_HPP
#define XLOSS_KL_DIV_WITH_LOGITS_HPP

/// @file
/// The knowledge-distillation loss from logits, fused: no softmax is stored.

#include <cstddef>
#include <limits>
#include <utility>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/core/divisor.hpp"
#include "detail/divergence/call.hpp"
#include "detail/divergence/policies.hpp"
#include "distill_options.hpp"
#include "divergence_result.hpp"
#include "kl_div_result.hpp"
#include "reduction.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @defgroup kl_div_with_logits Distillation loss from logits
         * @brief `T^2 * KL(softmax(teacher / T) || softmax(student / T))`, row by row along `axis`.
         *
         * The same numbers as PyTorch's
         * `T * T * kl_div(log_softmax(s / T, axis), log_softmax(t / T, axis), reduction, log_target=True)`,
         * computed in one fused pass per row (a row of scratch at most, for a row along an inner
         * axis) with SIMD kernels. Stable for logits of any magnitude; a class masked in the teacher
         * (-inf logit) contributes exactly 0 (PyTorch's composition gives NaN there), one masked in
         * the student only makes the row's loss +inf. Student and teacher must have the same shape.
         * Reductions as for kl_div(): `batchmean` (the default) divides the sum over rows by
         * `shape[0]`, `mean` by the number of elements, `none` gives each class's term.
         * @{
         */

        /**
         * @brief The distillation loss.
         * @param student_logits the student's logits s
         * @param teacher_logits the teacher's logits t, of the same shape
         * @param temperature T > 0
         * @param r the reduction
         * @param axis the class axis (negative counts from the end)
         * @throw std::invalid_argument for a temperature that is not positive (or whose 1/T or T^2 is
         *        not a finite nonzero number of the logits' type), shapes that differ, an axis out of
         *        range, a row of -inf logits or a row holding +inf (named by its index, e.g. "row (1)")
         *
         * @code
         * xt::xarray<float> s = {{2.f, 0.5f, -1.f}}, t = {{1.5f, 1.f, -2.f}};
         * float loss = xloss::kl_div_with_logits(s, t, 2.0)();  // batchmean, last axis
         * @endcode
         */
        template <class E1, class E2>
        auto kl_div_with_logits(const xt::xexpression<E1>& student_logits, const xt::xexpression<E2>& teacher_logits,
                                double temperature, reduction r = reduction::batchmean, std::ptrdiff_t axis = -1);

        /**
         * @brief The gradient of kl_div_with_logits() w.r.t. the student's logits:
         *        `T (softmax(s/T) - softmax(t/T)) * grad_output / divisor` for a reduced loss.
         * @param grad_output a scalar or 0-d expression for a reduced loss; for `none`, an expression
         *        broadcastable to the logits' shape, or a scalar
         */
        template <class G, class E1, class E2>
        auto kl_div_with_logits_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                         const xt::xexpression<E2>& teacher_logits, double temperature,
                                         reduction r = reduction::batchmean, std::ptrdiff_t axis = -1);

        /// @brief The gradient of kl_div_with_logits() w.r.t. the teacher's logits (for a teacher
        ///        that learns too); arguments as kl_div_with_logits_backward().
        template <class G, class E1, class E2>
        auto kl_div_with_logits_teacher_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                 const xt::xexpression<E2>& teacher_logits, double temperature,
                                                 reduction r = reduction::batchmean, std::ptrdiff_t axis = -1);

        /**
         * @brief The loss and the student's gradient (and, if `with_teacher_grad`, the teacher's) for
         *        grad_output 1, in one set of passes over the logits: what a training step needs.
         * @return `{loss, grad_input, grad_target}`: grad_input is the student's gradient, grad_target
         *         the teacher's (shape (0) unless asked for)
         */
        template <class E1, class E2>
        auto kl_div_with_logits_forward_backward(const xt::xexpression<E1>& student_logits,
                                                 const xt::xexpression<E2>& teacher_logits, double temperature,
                                                 reduction r = reduction::batchmean, std::ptrdiff_t axis = -1,
                                                 bool with_teacher_grad = false);

        /** @} */

        namespace detail
        {
            /**
             * kl_div_with_logits's arguments as a call of the forward-KL row policy; its reductions are
             * PyTorch's kl_div's over elements: `mean` divides by their number, `batchmean` by
             * shape[0], `none` gives each class's term.
             */
            template <class V, class E1, class E2>
            inline divergence_call<V, void> logits_call(const xt::xexpression<E1>& student_logits,
                                                        const xt::xexpression<E2>& teacher_logits, double temperature,
                                                        reduction r, std::ptrdiff_t axis, const char* func)
            {
                // Checked here, so that an error names this call rather than the options' setters.
                check_reduction(r, func);
                check_temperature(temperature, func);
                const auto& s = student_logits.derived_cast();
                const shape_type shape = to_shape(s.shape());
                // Counted over elements, and given to the row engine as the options' divisor.
                const double divisor = detail::reduction_divisor(r, 0., static_cast<double>(size_of(shape)),
                                                                 shape.empty() ? 0. : static_cast<double>(shape[0]));
                const distill_options options =
                    distill_options().reduction(r).temperature(temperature).axis(axis).divisor(divisor);
                return divergence_call<V, void>(s, teacher_logits.derived_cast(), no_labels{}, options, func,
                                                loss_layout::per_class);
            }

            /// An average over no elements (mean) or no samples (batchmean) is 0 / 0: NaN, as in PyTorch.
            template <class V, class E>
            inline void average_of_nothing(xt::xarray<V>& loss, const xt::xexpression<E>& logits, reduction r)
            {
                const shape_type shape = to_shape(logits.derived_cast().shape());
                if ((r == reduction::mean || r == reduction::batchmean) && size_of(shape) == 0
                    && (r == reduction::mean || shape[0] == 0))
                {
                    loss() = std::numeric_limits<V>::quiet_NaN();
                }
            }
        }

        template <class E1, class E2>
        inline auto kl_div_with_logits(const xt::xexpression<E1>& student_logits,
                                       const xt::xexpression<E2>& teacher_logits, double temperature, reduction r,
                                       std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            xt::xarray<V> loss =
                detail::logits_call<V>(student_logits, teacher_logits, temperature, r, axis, "kl_div_with_logits")
                    .loss(detail::forward_kl_policy{});
            detail::average_of_nothing(loss, student_logits, r);
            return loss;
        }

        template <class G, class E1, class E2>
        inline auto kl_div_with_logits_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                const xt::xexpression<E2>& teacher_logits, double temperature,
                                                reduction r, std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::logits_call<V>(student_logits, teacher_logits, temperature, r, axis,
                                          "kl_div_with_logits_backward")
                .gradient(detail::forward_kl_policy{}, grad_output, detail::wrt::student);
        }

        template <class G, class E1, class E2>
        inline auto kl_div_with_logits_teacher_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                        const xt::xexpression<E2>& teacher_logits, double temperature,
                                                        reduction r, std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::logits_call<V>(student_logits, teacher_logits, temperature, r, axis,
                                          "kl_div_with_logits_teacher_backward")
                .gradient(detail::forward_kl_policy{}, grad_output, detail::wrt::teacher);
        }

        template <class E1, class E2>
        inline auto kl_div_with_logits_forward_backward(const xt::xexpression<E1>& student_logits,
                                                        const xt::xexpression<E2>& teacher_logits, double temperature,
                                                        reduction r, std::ptrdiff_t axis, bool with_teacher_grad)
        {
            using V = detail::loss_value_t<E1, E2>;
            divergence_result<V> r_ = detail::logits_call<V>(student_logits, teacher_logits, temperature, r, axis,
                                                             "kl_div_with_logits_forward_backward")
                                          .forward_backward(detail::forward_kl_policy{}, with_teacher_grad);
            detail::average_of_nothing(r_.loss, student_logits, r);
            return kl_div_forward_backward_result<V>{std::move(r_.loss), std::move(r_.grad_student),
                                                     std::move(r_.grad_teacher)};
        }
    }
}

#endif
