/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_LOSS_HPP
#define XLOSS_KL_DIV_LOSS_HPP

/// @file
/// The KL-divergence loss as a module, like torch.nn.KLDivLoss.

#include <string_view>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)

#include "kl_div.hpp"
#include "kl_div_forward_backward.hpp"
#include "kl_div_options.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The KL-divergence loss as a functor holding its options.
         *
         * `loss(input, target)` is `kl_div(input, target, loss.options())`;
         * `loss.backward(input, target[, grad_output])` is the gradient w.r.t. the input,
         * `loss.target_backward(...)` the gradient w.r.t. the target (grad_output defaults to 1),
         * `loss.forward_backward(input, target)` the loss and the input gradient in one pass.
         *
         * @tparam T the value type the loss computes in; `void` (the default) promotes the
         *         arguments' types (float, or double as soon as one is double)
         *
         * @code
         * xloss::KLDivLoss loss(xloss::reduction::batchmean);  // or KLDivLoss loss("batchmean");
         * auto value = loss(x, t);           // 0-d xt::xarray
         * auto grad = loss.backward(x, t);   // shape of x
         * @endcode
         */
        template <class T = void>
        class KLDivLoss
        {
            static_assert(std::is_void<T>::value || detail::is_loss_value<T>::value,
                          "xloss::KLDivLoss<T>: T must be void, float or double");

        public:

            using options_type = kl_div_options;

            /// A loss with the given reduction and target space (defaults: mean, probabilities).
            explicit KLDivLoss(xloss::reduction r = xloss::reduction::mean, bool log_target = false) noexcept;

            /// A loss with the reduction the Python frameworks name ("none", "mean", "sum", "batchmean").
            /// @throw std::invalid_argument for any other name
            explicit KLDivLoss(std::string_view r, bool log_target = false);

            /// A loss with the given options.
            explicit KLDivLoss(const options_type& options) noexcept;

            /// The loss of input against target; see kl_div().
            template <class E1, class E2>
            auto operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const;

            /// The loss with each term weighted by `sample_weight` (broadcastable to input and target).
            template <class E1, class E2, class W>
            auto operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                            const xt::xexpression<W>& sample_weight) const;

            /// Same as operator().
            template <class E1, class E2>
            auto forward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const;

            /// The gradient w.r.t. the input for a unit grad_output; see kl_div_backward().
            template <class E1, class E2>
            auto backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const;

            /// The gradient w.r.t. the input; see kl_div_backward().
            template <class E1, class E2, class G>
            auto backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                          const G& grad_output) const;

            /// The gradient w.r.t. the input of the loss with a sample weight.
            template <class E1, class E2, class G, class W>
            auto backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, const G& grad_output,
                          const xt::xexpression<W>& sample_weight) const;

            /// The gradient w.r.t. the target for a unit grad_output; see kl_div_target_backward().
            template <class E1, class E2>
            auto target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const;

            /// The gradient w.r.t. the target; see kl_div_target_backward().
            template <class E1, class E2, class G>
            auto target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                 const G& grad_output) const;

            /// The gradient w.r.t. the target of the loss with a sample weight.
            template <class E1, class E2, class G, class W>
            auto target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                 const G& grad_output, const xt::xexpression<W>& sample_weight) const;

            /// The loss and its gradients in one pass; see kl_div_forward_backward().
            template <class E1, class E2>
            auto forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                  bool with_target_grad = false) const;

            /// The reduction applied to the pointwise terms.
            xloss::reduction reduction() const noexcept
            {
                return m_options.reduction();
            }

            /// Whether the target holds log-probabilities.
            bool log_target() const noexcept
            {
                return m_options.log_target();
            }

            /// All options.
            const options_type& options() const noexcept
            {
                return m_options;
            }

        private:

            /// The argument itself, or a lazy cast to T.
            template <class E>
            static decltype(auto) as_value(const xt::xexpression<E>& e)
            {
                if constexpr (std::is_void<T>::value)
                {
                    return e;
                }
                else
                {
                    return xt::cast<T>(e.derived_cast());
                }
            }

            options_type m_options;
        };

        template <class T>
        inline KLDivLoss<T>::KLDivLoss(xloss::reduction r, bool log_target) noexcept
            : m_options(r, log_target)
        {
        }

        template <class T>
        inline KLDivLoss<T>::KLDivLoss(std::string_view r, bool log_target)
            : m_options(r, log_target)
        {
        }

        template <class T>
        inline KLDivLoss<T>::KLDivLoss(const options_type& options) noexcept
            : m_options(options)
        {
        }

        template <class T>
        template <class E1, class E2>
        inline auto KLDivLoss<T>::operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const
        {
            return kl_div(as_value(input), as_value(target), m_options);
        }

        template <class T>
        template <class E1, class E2>
        inline auto KLDivLoss<T>::forward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const
        {
            return (*this)(input, target);
        }

        template <class T>
        template <class E1, class E2>
        inline auto KLDivLoss<T>::backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const
        {
            return kl_div_backward(1.0, as_value(input), as_value(target), m_options);
        }

        template <class T>
        template <class E1, class E2, class G>
        inline auto KLDivLoss<T>::backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                           const G& grad_output) const
        {
            return kl_div_backward(grad_output, as_value(input), as_value(target), m_options);
        }

        template <class T>
        template <class E1, class E2>
        inline auto KLDivLoss<T>::target_backward(const xt::xexpression<E1>& input,
                                                  const xt::xexpression<E2>& target) const
        {
            return kl_div_target_backward(1.0, as_value(input), as_value(target), m_options);
        }

        template <class T>
        template <class E1, class E2, class G>
        inline auto KLDivLoss<T>::target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                                  const G& grad_output) const
        {
            return kl_div_target_backward(grad_output, as_value(input), as_value(target), m_options);
        }

        template <class T>
        template <class E1, class E2, class W>
        inline auto KLDivLoss<T>::operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                             const xt::xexpression<W>& sample_weight) const
        {
            return kl_div(as_value(input), as_value(target), m_options, sample_weight);
        }

        template <class T>
        template <class E1, class E2, class G, class W>
        inline auto KLDivLoss<T>::backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                           const G& grad_output, const xt::xexpression<W>& sample_weight) const
        {
            return kl_div_backward(grad_output, as_value(input), as_value(target), m_options, sample_weight);
        }

        template <class T>
        template <class E1, class E2, class G, class W>
        inline auto KLDivLoss<T>::target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                                  const G& grad_output, const xt::xexpression<W>& sample_weight) const
        {
            return kl_div_target_backward(grad_output, as_value(input), as_value(target), m_options, sample_weight);
        }

        template <class T>
        template <class E1, class E2>
        inline auto KLDivLoss<T>::forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                                   bool with_target_grad) const
        {
            return kl_div_forward_backward(as_value(input), as_value(target), m_options, with_target_grad);
        }
    }
}

#endif
