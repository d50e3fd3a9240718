/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_WITH_LOGITS_HPP
#define XLOSS_KL_DIV_WITH_LOGITS_HPP

/// @file
/// The knowledge-distillation loss from logits, fused: no softmax is stored.

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(views, xbroadcast.hpp)

#include "detail/core/error.hpp"
#include "detail/core/expression.hpp"
#include "detail/core/grad_output.hpp"
#include "detail/kernels/classify.hpp"
#include "detail/kernels/softmax.hpp"
#include "detail/kl_div/call.hpp"
#include "detail/kl_div/distill_kernels.hpp"
#include "kl_div_forward_backward.hpp"
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
         * @throw std::invalid_argument for a temperature that is not positive, shapes that differ, an
         *        axis out of range, or a row of -inf logits
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
            /// Checks of one call, and what every row needs.
            struct logits_setup
            {
                shape_type shape;
                std::size_t axis;
                double divisor;
            };

            template <class E1, class E2>
            inline logits_setup make_logits_setup(const E1& s, const E2& t, double temperature, reduction r,
                                                  std::ptrdiff_t axis, const char* func)
            {
                check_reduction(r, func);
                if (!is_positive_finite(temperature))
                {
                    detail::raise(option_error(func, "temperature", "positive and finite", temperature));
                }
                logits_setup setup;
                setup.shape = to_shape(s.shape());
                const shape_type teacher_shape = to_shape(t.shape());
                if (setup.shape != teacher_shape)
                {
                    detail::raise(std::invalid_argument(std::string("xloss::") + func + ": student_logits of shape "
                                                        + shape_to_string(setup.shape) + " and teacher_logits of shape "
                                                        + shape_to_string(teacher_shape) + " differ"));
                }
                setup.axis = normalize_axis(axis, setup.shape.size(), func, "axis");
                setup.divisor = r == reduction::mean        ? static_cast<double>(size_of(setup.shape))
                                : r == reduction::batchmean ? static_cast<double>(setup.shape[0])
                                                            : 1.;
                return setup;
            }

            /// grad_output of the distillation loss: one number (`uniform`), or an array of the logits' shape.
            template <class V>
            struct distill_grad_output
            {
                V uniform = 0;
                xt::xarray<V> full; ///< empty unless grad_output varies per element (`none`)
            };

            template <class V, class G>
            inline distill_grad_output<V> make_distill_grad_output(const G& grad_output, const logits_setup& setup,
                                                                   reduction r, const char* func)
            {
                distill_grad_output<V> g;
                visit_grad_output(
                    grad_output, r == reduction::none ? setup.shape : shape_type{}, func,
                    [&](double v)
                    {
                        g.uniform = static_cast<V>(v);
                    },
                    [&](const auto& e)
                    {
                        g.full = xt::broadcast(xt::cast<V>(e), setup.shape);
                    });
                return g;
            }

            /**
             * The rows' pass set: maxima (rows of -inf throw), sums, then one write pass for the outputs
             * that are not null (`terms`: the `none` loss; the student's and the teacher's gradients for
             * grad_output g). Returns the sum of the rows' KL divergences (without T^2) when `with_kl`.
             * Strided rows go through a few rows of scratch.
             */
            template <class V>
            inline double distill_rows(const V* s, const V* t, const logits_setup& setup, double temperature,
                                       const distill_grad_output<V>& g, bool with_kl, V* terms, V* grad_student,
                                       V* grad_teacher, const char* func)
            {
                using batch = default_batch<V>;
                const row_layout rows(setup.shape, setup.axis);
                const std::size_t n = rows.length;
                const V inv_temp = static_cast<V>(1. / temperature);
                const bool per_element = g.full.size() > 0 && g.full.dimension() > 0;
                const bool writes = terms || grad_student || grad_teacher;
                // Teacher gradients for a uniform grad_output need the row's KL.
                with_kl = with_kl || (grad_teacher && !per_element);
                std::vector<V> scratch(rows.inner == 1 ? 0 : 6 * n);
                V* buf[6] = {};
                for (std::size_t j = 0; j < 6 && !scratch.empty(); ++j)
                {
                    buf[j] = scratch.data() + j * n; // (no offset from an empty vector's null data())
                }
                distill_outputs<V> o;
                o.term_scale = static_cast<V>(temperature * temperature);
                o.grad_scale = static_cast<V>(temperature / setup.divisor);
                double total = 0.;
                for (std::size_t k = 0; k < rows.rows && n > 0; ++k)
                {
                    const V* sr = rows.read(s, k, buf[0]);
                    const V* tr = rows.read(t, k, buf[1]);
                    distill_row<V> r;
                    r.max_s = row_max<batch>(sr, n);
                    r.max_t = row_max<batch>(tr, n);
                    for (auto [m, name] :
                         {std::pair<V, const char*>{r.max_s, "student_logits"}, {r.max_t, "teacher_logits"}})
                    {
                        if (is_neg_inf(m))
                        {
                            detail::raise(std::invalid_argument(std::string("xloss::") + func + ": " + name + " row "
                                                                + std::to_string(k)
                                                                + " is all -inf: its softmax is undefined"));
                        }
                    }
                    distill_sums<batch>(sr, tr, n, inv_temp, with_kl, r);
                    total += r.kl;
                    if (!writes)
                    {
                        continue;
                    }
                    o.term = terms ? rows.write(terms, k, buf[3]) : nullptr;
                    o.student = grad_student ? rows.write(grad_student, k, buf[4]) : nullptr;
                    o.teacher = grad_teacher ? rows.write(grad_teacher, k, buf[5]) : nullptr;
                    if (per_element)
                    {
                        const V* gr = rows.read(static_cast<const V*>(g.full.data()), k, buf[2]);
                        double gp = 0., gpl = 0.;
                        distill_grad_sums<batch>(sr, tr, gr, n, inv_temp, r, gp, gpl);
                        o.gp = static_cast<V>(gp);
                        o.gpl = static_cast<V>(gpl);
                        distill_write<batch>(sr, tr, gr, n, inv_temp, r, o);
                    }
                    else
                    {
                        o.gp = g.uniform;
                        o.gpl = static_cast<V>(g.uniform * (r.kl + 1.));
                        distill_write<batch>(sr, tr, scalar_arg<V>{g.uniform}, n, inv_temp, r, o);
                    }
                    for (auto [out, row] :
                         {std::pair<V*, V*>{terms, o.term}, {grad_student, o.student}, {grad_teacher, o.teacher}})
                    {
                        if (out)
                        {
                            rows.scatter(out, k, row);
                        }
                    }
                }
                return total;
            }

            /// The loss and the gradients asked for, into new arrays.
            template <class V, class G, class E1, class E2>
            inline kl_div_forward_backward_result<V> distill(const G& grad_output, const E1& s_expr, const E2& t_expr,
                                                             double temperature, reduction r, std::ptrdiff_t axis,
                                                             bool loss, bool grad_student, bool grad_teacher,
                                                             const char* func)
            {
                const logits_setup setup = make_logits_setup(s_expr, t_expr, temperature, r, axis, func);
                const distill_grad_output<V> g = make_distill_grad_output<V>(grad_output, setup, r, func);
                const contiguous_array<V> s(s_expr), t(t_expr);
                const bool none = r == reduction::none;
                auto array = [&](bool wanted)
                {
                    return xt::xarray<V>::from_shape(wanted ? setup.shape : shape_type{0});
                };
                kl_div_forward_backward_result<V> result{array(loss && none), array(grad_student), array(grad_teacher)};
                auto data = [](xt::xarray<V>& a)
                {
                    return a.size() > 0 ? a.data() : nullptr;
                };
                const double total =
                    distill_rows<V>(s.data, t.data, setup, temperature, g, loss && !none, data(result.loss),
                                    data(result.grad_input), data(result.grad_target), func);
                if (loss && !none)
                {
                    result.loss = xt::xarray<V>::from_shape({});
                    result.loss() = static_cast<V>(temperature * temperature * total / setup.divisor);
                }
                return result;
            }
        }

        template <class E1, class E2>
        inline auto kl_div_with_logits(const xt::xexpression<E1>& student_logits,
                                       const xt::xexpression<E2>& teacher_logits, double temperature, reduction r,
                                       std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::distill<V>(1., student_logits.derived_cast(), teacher_logits.derived_cast(), temperature, r,
                                      axis, true, false, false, "kl_div_with_logits")
                .loss;
        }

        template <class G, class E1, class E2>
        inline auto kl_div_with_logits_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                const xt::xexpression<E2>& teacher_logits, double temperature,
                                                reduction r, std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::distill<V>(grad_output, student_logits.derived_cast(), teacher_logits.derived_cast(),
                                      temperature, r, axis, false, true, false, "kl_div_with_logits_backward")
                .grad_input;
        }

        template <class G, class E1, class E2>
        inline auto kl_div_with_logits_teacher_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                        const xt::xexpression<E2>& teacher_logits, double temperature,
                                                        reduction r, std::ptrdiff_t axis)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::distill<V>(grad_output, student_logits.derived_cast(), teacher_logits.derived_cast(),
                                      temperature, r, axis, false, false, true, "kl_div_with_logits_teacher_backward")
                .grad_target;
        }

        template <class E1, class E2>
        inline auto kl_div_with_logits_forward_backward(const xt::xexpression<E1>& student_logits,
                                                        const xt::xexpression<E2>& teacher_logits, double temperature,
                                                        reduction r, std::ptrdiff_t axis, bool with_teacher_grad)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::distill<V>(1., student_logits.derived_cast(), teacher_logits.derived_cast(), temperature, r,
                                      axis, true, true, with_teacher_grad, "kl_div_with_logits_forward_backward");
        }
    }
}

#endif
