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
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>

#include "detail/distill_kernels.hpp"
#include "detail/expression.hpp"
#include "detail/kl_div_impl.hpp"
#include "detail/softmax_kernels.hpp"
#include "reduction.hpp"

namespace xloss
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

    /** @} */

    namespace detail
    {
        /// The logits as contiguous row-major data of V: in place, or a copy.
        template <class V>
        struct contiguous_logits
        {
            xt::xarray<V> copy;
            const V* data;

            template <class E>
            explicit contiguous_logits(const E& e)
                : data(contiguous_data<V>(e))
            {
                if (!data)
                {
                    copy = e;
                    data = copy.data();
                }
            }
        };

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
            if (!(temperature > 0.) || std::isinf(temperature))
            {
                throw option_error(func, "temperature", "positive and finite", temperature);
            }
            logits_setup setup;
            setup.shape = to_shape(s.shape());
            const shape_type teacher_shape = to_shape(t.shape());
            if (setup.shape != teacher_shape)
            {
                throw std::invalid_argument(std::string("xloss::") + func + ": student_logits of shape "
                                            + shape_to_string(setup.shape) + " and teacher_logits of shape "
                                            + shape_to_string(teacher_shape) + " differ");
            }
            setup.axis = normalize_axis(axis, setup.shape.size(), func, "axis");
            setup.divisor = r == reduction::mean        ? static_cast<double>(size_of(setup.shape))
                            : r == reduction::batchmean ? static_cast<double>(setup.shape[0])
                                                        : 1.;
            return setup;
        }

        /**
         * Runs f(k, s_row, t_row, row_stats, out_row) over the rows, after the maxima (checked for
         * rows of -inf) and the sums; `out` (may be null) is the array the rows write into.
         */
        template <class V, class F>
        inline void for_each_logit_row(const V* s, const V* t, V* out, const logits_setup& setup, V inv_temp,
                                       bool with_kl, const char* func, F&& f)
        {
            using batch = default_batch<V>;
            const row_layout rows(setup.shape, setup.axis);
            const std::size_t n = rows.length;
            std::vector<V> scratch(rows.inner == 1 ? 0 : 3 * n);
            for (std::size_t k = 0; k < rows.rows && n > 0; ++k)
            {
                const V* sr = rows.read(s, k, scratch.data());
                const V* tr = rows.read(t, k, scratch.data() + n);
                distill_row<V> r;
                r.max_s = row_max<batch>(sr, n);
                r.max_t = row_max<batch>(tr, n);
                for (auto [m, name] :
                     {std::pair<V, const char*>{r.max_s, "student_logits"}, {r.max_t, "teacher_logits"}})
                {
                    if (m == -std::numeric_limits<V>::infinity())
                    {
                        throw std::invalid_argument(std::string("xloss::") + func + ": " + name + " row "
                                                    + std::to_string(k) + " is all -inf: its softmax is undefined");
                    }
                }
                distill_sums<batch>(sr, tr, n, inv_temp, with_kl, r);
                V* o = out ? rows.write(out, k, scratch.data() + 2 * n) : nullptr;
                f(k, sr, tr, r, o, rows);
                if (o)
                {
                    rows.scatter(out, k, o);
                }
            }
        }

        template <class V, bool wrt_teacher, class G, class E1, class E2>
        inline xt::xarray<V> distill_gradient_array(const G& grad_output, const E1& s_expr, const E2& t_expr,
                                                    double temperature, reduction r, std::ptrdiff_t axis,
                                                    const char* func)
        {
            using batch = default_batch<V>;
            const logits_setup setup = make_logits_setup(s_expr, t_expr, temperature, r, axis, func);
            const contiguous_logits<V> s(s_expr), t(t_expr);
            const V inv_temp = static_cast<V>(1. / temperature);
            const V scale = static_cast<V>(temperature / setup.divisor);
            xt::xarray<V> out = xt::xarray<V>::from_shape(setup.shape);
            // grad_output: one number for a reduced loss, an array of the logits' shape for `none`.
            xt::xarray<V> g_full;
            V g_scalar = 0;
            if constexpr (xt::is_xexpression<G>::value)
            {
                const shape_type g_shape = to_shape(grad_output.shape());
                const shape_type loss_shape = r == reduction::none ? setup.shape : shape_type{};
                if (!broadcasts_to(g_shape, loss_shape))
                {
                    throw std::invalid_argument(std::string("xloss::") + func + ": grad_output of shape "
                                                + shape_to_string(g_shape) + " does not broadcast to the loss's shape "
                                                + shape_to_string(loss_shape));
                }
                if (r == reduction::none && !g_shape.empty())
                {
                    g_full = xt::broadcast(xt::cast<V>(grad_output), setup.shape);
                }
                else
                {
                    g_scalar = static_cast<V>(grad_output());
                }
            }
            else
            {
                g_scalar = static_cast<V>(grad_output);
            }
            const bool per_element = g_full.size() > 0 && g_full.dimension() > 0;
            std::vector<V> g_row(per_element && setup.axis + 1 != setup.shape.size() ? setup.shape[setup.axis] : 0);
            for_each_logit_row<V>(
                s.data, t.data, out.data(), setup, inv_temp, wrt_teacher && !per_element, func,
                [&](std::size_t k, const V* sr, const V* tr, const distill_row<V>& row, V* o, const row_layout& rows)
                {
                    const std::size_t n = rows.length;
                    if (per_element)
                    {
                        const V* gr = rows.read(static_cast<const V*>(g_full.data()), k, g_row.data());
                        double gp = 0., gpl = 0.;
                        distill_grad_sums<batch>(sr, tr, gr, n, inv_temp, row, gp, gpl);
                        distill_gradient<batch, wrt_teacher>(sr, tr, gr, n, inv_temp, row, scale, static_cast<V>(gp),
                                                             static_cast<V>(gpl), o);
                    }
                    else
                    {
                        const scalar_arg<V> g{g_scalar};
                        distill_gradient<batch, wrt_teacher>(sr, tr, g, n, inv_temp, row, scale, g_scalar,
                                                             static_cast<V>(g_scalar * (row.kl + 1.)), o);
                    }
                });
            return out;
        }
    }

    template <class E1, class E2>
    inline auto kl_div_with_logits(const xt::xexpression<E1>& student_logits, const xt::xexpression<E2>& teacher_logits,
                                   double temperature, reduction r, std::ptrdiff_t axis)
    {
        using V = detail::loss_value_t<E1, E2>;
        using batch = detail::default_batch<V>;
        constexpr const char* func = "kl_div_with_logits";
        const auto& se = student_logits.derived_cast();
        const auto& te = teacher_logits.derived_cast();
        const detail::logits_setup setup = detail::make_logits_setup(se, te, temperature, r, axis, func);
        const detail::contiguous_logits<V> s(se), t(te);
        const V inv_temp = static_cast<V>(1. / temperature);
        const double t2 = temperature * temperature;
        if (r == reduction::none)
        {
            xt::xarray<V> out = xt::xarray<V>::from_shape(setup.shape);
            detail::for_each_logit_row<V>(
                s.data, t.data, out.data(), setup, inv_temp, false, func,
                [&](std::size_t, const V* sr, const V* tr, const auto& row, V* o, const detail::row_layout& rows)
                {
                    detail::distill_terms<batch>(sr, tr, rows.length, inv_temp, row, static_cast<V>(t2), o);
                });
            return out;
        }
        double total = 0.;
        detail::for_each_logit_row<V>(s.data, t.data, nullptr, setup, inv_temp, true, func,
                                      [&](std::size_t, const V*, const V*, const auto& row, V*, const auto&)
                                      {
                                          total += row.kl;
                                      });
        xt::xarray<V> out = xt::xarray<V>::from_shape({});
        out() = static_cast<V>(t2 * total / setup.divisor);
        return out;
    }

    template <class G, class E1, class E2>
    inline auto kl_div_with_logits_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                            const xt::xexpression<E2>& teacher_logits, double temperature, reduction r,
                                            std::ptrdiff_t axis)
    {
        using V = detail::loss_value_t<E1, E2>;
        return detail::distill_gradient_array<V, false>(grad_output, student_logits.derived_cast(),
                                                        teacher_logits.derived_cast(), temperature, r, axis,
                                                        "kl_div_with_logits_backward");
    }

    template <class G, class E1, class E2>
    inline auto kl_div_with_logits_teacher_backward(const G& grad_output, const xt::xexpression<E1>& student_logits,
                                                    const xt::xexpression<E2>& teacher_logits, double temperature,
                                                    reduction r, std::ptrdiff_t axis)
    {
        using V = detail::loss_value_t<E1, E2>;
        return detail::distill_gradient_array<V, true>(grad_output, student_logits.derived_cast(),
                                                       teacher_logits.derived_cast(), temperature, r, axis,
                                                       "kl_div_with_logits_teacher_backward");
    }
}

#endif
