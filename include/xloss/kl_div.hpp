/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_HPP
#define XLOSS_KL_DIV_HPP

/// @file
/// The Kullback-Leibler divergence loss and its gradients, as functions.

#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

#include "detail/expression.hpp"
#include "detail/kernels.hpp"
#include "detail/kl_div_ops.hpp"
#include "kl_div_options.hpp"
#include "reduction.hpp"

namespace xloss
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

    /** @} */

    namespace detail
    {
        /// What a reduction divides the sum by: numel for mean, input.shape[0] for batchmean.
        inline double loss_divisor(reduction r, const shape_type& input_shape, std::size_t numel)
        {
            switch (r)
            {
                case reduction::mean:
                    return static_cast<double>(numel);
                case reduction::batchmean:
                    return input_shape.empty() ? 1. : static_cast<double>(input_shape[0]);
                default:
                    return 1.;
            }
        }

        template <class V>
        inline xt::xarray<V> make_scalar(V value)
        {
            xt::xarray<V> r = xt::xarray<V>::from_shape(shape_type{});
            r() = value;
            return r;
        }

        /// Sums a broadcast-shaped gradient over the axes its argument was broadcast along.
        template <class V>
        inline xt::xarray<V> sum_to_shape(xt::xarray<V>&& full, const shape_type& shape)
        {
            if (full.dimension() == shape.size() && std::equal(shape.begin(), shape.end(), full.shape().begin()))
            {
                return std::move(full);
            }
            const std::size_t lead = full.dimension() - shape.size();
            std::vector<std::size_t> axes;
            for (std::size_t i = 0; i < full.dimension(); ++i)
            {
                if (i < lead || (shape[i - lead] == 1 && full.shape()[i] != 1))
                {
                    axes.push_back(i);
                }
            }
            xt::xarray<V> r = xt::cast<V>(xt::sum<double>(full, axes, xt::evaluation_strategy::immediate));
            r.reshape(shape);
            return r;
        }

        template <class Op, class V, class E1, class E2>
        inline xt::xarray<V> kl_div_forward(Op op, const E1& x, const E2& t, reduction r)
        {
            using batch = default_batch<V>;
            const shape_type input_shape = to_shape(x.shape());
            const shape_type shape = broadcast_shapes(input_shape, to_shape(t.shape()), "kl_div", "input", "target");
            if (r == reduction::none)
            {
                xt::xarray<V> out = xt::xarray<V>::from_shape(shape);
                walk<V>(x, t, scalar_source<V>{V(0)}, shape,
                        [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset)
                        {
                            map<batch>(op, px, pt, pg, out.data() + offset, m);
                        });
                return out;
            }
            block_sum<batch> acc;
            walk<V>(x, t, scalar_source<V>{V(0)}, shape,
                    [&](auto px, auto pt, auto pg, std::size_t m, std::size_t)
                    {
                        acc.add(op, px, pt, pg, m);
                    });
            return make_scalar(static_cast<V>(acc.total() / loss_divisor(r, input_shape, size_of(shape))));
        }

        /// The gradient of the loss w.r.t. one argument (`op` says which), in `result_shape`.
        template <class Op, class V, class G, class E1, class E2>
        inline xt::xarray<V> kl_div_gradient(Op op, const G& grad_output, const E1& x, const E2& t, reduction r,
                                             const shape_type& result_shape, const char* func)
        {
            using batch = default_batch<V>;
            const shape_type input_shape = to_shape(x.shape());
            const shape_type shape = broadcast_shapes(input_shape, to_shape(t.shape()), func, "input", "target");
            xt::xarray<V> full = xt::xarray<V>::from_shape(shape);
            auto kernel = [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset)
            {
                map<batch>(op, px, pt, pg, full.data() + offset, m);
            };
            const double divisor = loss_divisor(r, input_shape, size_of(shape));

            if constexpr (xt::is_xexpression<G>::value)
            {
                static_assert(std::is_arithmetic<typename G::value_type>::value,
                              "xloss: grad_output must hold arithmetic values");
                const shape_type grad_shape = to_shape(grad_output.shape());
                if (r == reduction::none)
                {
                    if (!broadcasts_to(grad_shape, shape))
                    {
                        throw std::invalid_argument(
                            std::string("xloss::") + func + ": grad_output of shape " + shape_to_string(grad_shape)
                            + " does not broadcast to the loss's shape " + shape_to_string(shape));
                    }
                    walk<V>(x, t, grad_output, shape, kernel);
                    return sum_to_shape(std::move(full), result_shape);
                }
                if (!grad_shape.empty())
                {
                    throw std::invalid_argument(std::string("xloss::") + func + ": grad_output of shape "
                                                + shape_to_string(grad_shape)
                                                + " does not match the reduced loss's shape (); pass a 0-d "
                                                  "expression or a scalar");
                }
                const V g = static_cast<V>(static_cast<double>(grad_output()) / divisor);
                walk<V>(x, t, scalar_source<V>{g}, shape, kernel);
            }
            else
            {
                static_assert(std::is_arithmetic<G>::value,
                              "xloss: grad_output must be an xtensor expression or an arithmetic scalar");
                const V g = static_cast<V>(static_cast<double>(grad_output) / divisor);
                walk<V>(x, t, scalar_source<V>{g}, shape, kernel);
            }
            return sum_to_shape(std::move(full), result_shape);
        }
    }

    template <class E1, class E2>
    inline auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, reduction r,
                       bool log_target)
    {
        using V = detail::loss_value_t<E1, E2>;
        const auto& x = input.derived_cast();
        const auto& t = target.derived_cast();
        return log_target ? detail::kl_div_forward<detail::kl_term_log, V>({}, x, t, r)
                          : detail::kl_div_forward<detail::kl_term, V>({}, x, t, r);
    }

    template <class E1, class E2>
    inline auto kl_div(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                       const kl_div_options& options)
    {
        return kl_div(input, target, options.reduction(), options.log_target());
    }

    template <class G, class E1, class E2>
    inline auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                const xt::xexpression<E2>& target, reduction r, bool log_target)
    {
        using V = detail::loss_value_t<E1, E2>;
        const auto& x = input.derived_cast();
        const auto& t = target.derived_cast();
        const detail::shape_type shape = detail::to_shape(x.shape());
        constexpr const char* func = "kl_div_backward";
        return log_target ? detail::kl_div_gradient<detail::kl_input_grad_log, V>({}, grad_output, x, t, r, shape, func)
                          : detail::kl_div_gradient<detail::kl_input_grad, V>({}, grad_output, x, t, r, shape, func);
    }

    template <class G, class E1, class E2>
    inline auto kl_div_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                const xt::xexpression<E2>& target, const kl_div_options& options)
    {
        return kl_div_backward(grad_output, input, target, options.reduction(), options.log_target());
    }

    template <class G, class E1, class E2>
    inline auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                       const xt::xexpression<E2>& target, reduction r, bool log_target)
    {
        using V = detail::loss_value_t<E1, E2>;
        const auto& x = input.derived_cast();
        const auto& t = target.derived_cast();
        const detail::shape_type shape = detail::to_shape(t.shape());
        constexpr const char* func = "kl_div_target_backward";
        return log_target
                   ? detail::kl_div_gradient<detail::kl_target_grad_log, V>({}, grad_output, x, t, r, shape, func)
                   : detail::kl_div_gradient<detail::kl_target_grad, V>({}, grad_output, x, t, r, shape, func);
    }

    template <class G, class E1, class E2>
    inline auto kl_div_target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                       const xt::xexpression<E2>& target, const kl_div_options& options)
    {
        return kl_div_target_backward(grad_output, input, target, options.reduction(), options.log_target());
    }
}

#endif
