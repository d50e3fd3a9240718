/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_POINTWISE_LOSS_HPP
#define XLOSS_POINTWISE_LOSS_HPP

/// @file
/// Every entry point of a pointwise loss, for any loss the engine is given (kl_div's are these),
/// and the module class template (KLDivLoss is one).
///
/// A pointwise loss is an op set (its term and its two gradients, on scalars and xsimd batches),
/// an options class deriving from pointwise_options, and a definition (detail::pointwise_definition:
/// its name, the op set its options select, its own checks). The functions below then give it the
/// allocating calls, the `_out` calls, the fused forward and backward, the option path (weights,
/// axes, logits input), threads and the module; docs/developer.md walks through one.

#include <cstddef>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)
#include XLOSS_XTENSOR_HEADER(core, xoperation.hpp)

#include "detail/engine/pointwise_run.hpp"
#include "pointwise_options.hpp"
#include "pointwise_result.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The entry points, whose names in errors are the loss's name and these suffixes.
            enum class pointwise_entry
            {
                loss,
                backward,
                target_backward,
                forward_backward,
                loss_out,
                backward_out,
                target_backward_out,
                forward_backward_out
            };

            /// An entry point's name, built once into a fixed buffer (no allocation: `_out` calls make none).
            template <class Options, pointwise_entry E>
            inline const char* entry_name() noexcept
            {
                struct name_buffer
                {
                    char text[96] = {};

                    name_buffer() noexcept
                    {
                        constexpr const char* suffixes[] = {
                            "",     "_backward",     "_target_backward",     "_forward_backward",
                            "_out", "_backward_out", "_target_backward_out", "_forward_backward_out"};
                        std::size_t n = 0;
                        for (const char* part : {pointwise_definition_t<Options>::name, suffixes[int(E)]})
                        {
                            for (; *part && n + 1 < sizeof(text); ++part)
                            {
                                text[n++] = *part;
                            }
                        }
                    }
                };
                static const name_buffer name;
                return name.text;
            }
        }

        /// The entry points of every pointwise loss, by its options class (see pointwise_loss.hpp).
        namespace pointwise
        {
            /// The loss (`none`: of the broadcast shape; with axes: of the kept axes; else a 0-d array).
            template <class E1, class E2, class Options>
            inline auto loss(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::loss>;
                return detail::loss<V>(input.derived_cast(), target.derived_cast(), options, name());
            }

            /// The loss with a sample weight (broadcastable to the broadcast shape): the option path.
            template <class E1, class E2, class Options, class W>
            inline auto loss(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const Options& options, const xt::xexpression<W>& sample_weight)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::loss>;
                return detail::general_forward<V>(input.derived_cast(), target.derived_cast(),
                                                  sample_weight.derived_cast(), options, name());
            }

            /// The gradient w.r.t. the input (its logits, with input(row_input::logits)), in its shape.
            template <class G, class E1, class E2, class Options>
            inline auto backward(const G& grad_output, const xt::xexpression<E1>& input,
                                 const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::backward>;
                return detail::gradient_of<V, detail::pointwise_wrt::input>(grad_output, input.derived_cast(),
                                                                            target.derived_cast(), options, name());
            }

            /// backward() with a sample weight.
            template <class G, class E1, class E2, class Options, class W>
            inline auto backward(const G& grad_output, const xt::xexpression<E1>& input,
                                 const xt::xexpression<E2>& target, const Options& options,
                                 const xt::xexpression<W>& sample_weight)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::backward>;
                return detail::general_gradient<V, detail::pointwise_wrt::input>(
                    grad_output, input.derived_cast(), target.derived_cast(), sample_weight.derived_cast(), options,
                    name());
            }

            /// The gradient w.r.t. the target, in its shape.
            template <class G, class E1, class E2, class Options>
            inline auto target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                        const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::target_backward>;
                return detail::gradient_of<V, detail::pointwise_wrt::target>(grad_output, input.derived_cast(),
                                                                             target.derived_cast(), options, name());
            }

            /// target_backward() with a sample weight.
            template <class G, class E1, class E2, class Options, class W>
            inline auto target_backward(const G& grad_output, const xt::xexpression<E1>& input,
                                        const xt::xexpression<E2>& target, const Options& options,
                                        const xt::xexpression<W>& sample_weight)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::target_backward>;
                return detail::general_gradient<V, detail::pointwise_wrt::target>(
                    grad_output, input.derived_cast(), target.derived_cast(), sample_weight.derived_cast(), options,
                    name());
            }

            /// The loss into `out` (an xtensor container, or an arithmetic scalar for a reduced loss).
            template <class O, class E1, class E2, class Options>
            inline O& loss_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                               const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::loss_out>;
                return detail::loss_out<V>(out, input.derived_cast(), target.derived_cast(), options, name());
            }

            /// backward() into `grad_input` (of the input's shape).
            template <class O, class G, class E1, class E2, class Options>
            inline O& backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                                   const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::backward_out>;
                return detail::gradient_out<V, detail::pointwise_wrt::input>(
                    grad_input, grad_output, input.derived_cast(), target.derived_cast(), options, name());
            }

            /// target_backward() into `grad_target` (of the target's shape).
            template <class O, class G, class E1, class E2, class Options>
            inline O& target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                          const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::target_backward_out>;
                return detail::gradient_out<V, detail::pointwise_wrt::target>(
                    grad_target, grad_output, input.derived_cast(), target.derived_cast(), options, name());
            }

            /// The loss and the gradients in one pass (grad_output 1); the target's when asked for here
            /// or by options.target_grad().
            template <class E1, class E2, class Options>
            inline pointwise_result<detail::loss_value_t<E1, E2>> forward_backward(const xt::xexpression<E1>& input,
                                                                                   const xt::xexpression<E2>& target,
                                                                                   const Options& options,
                                                                                   bool with_target_grad = false)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::forward_backward>;
                return detail::forward_backward<V>(input.derived_cast(), target.derived_cast(), options,
                                                   with_target_grad || options.target_grad(), name());
            }

            /// forward_backward() into the caller's loss and input gradient.
            template <class L, class O, class E1, class E2, class Options>
            inline void forward_backward_out(L& loss, O& grad_input, const xt::xexpression<E1>& input,
                                             const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::forward_backward_out>;
                detail::no_output no_target;
                detail::forward_backward_out<V>(loss, grad_input, no_target, input.derived_cast(),
                                                target.derived_cast(), options, name());
            }

            /// forward_backward() into the caller's loss and both gradients.
            template <class L, class O, class P, class E1, class E2, class Options>
            inline void forward_backward_out(L& loss, O& grad_input, P& grad_target, const xt::xexpression<E1>& input,
                                             const xt::xexpression<E2>& target, const Options& options)
            {
                using V = detail::loss_value_t<E1, E2>;
                constexpr auto name = detail::entry_name<Options, detail::pointwise_entry::forward_backward_out>;
                detail::forward_backward_out<V>(loss, grad_input, grad_target, input.derived_cast(),
                                                target.derived_cast(), options, name());
            }
        }

        /**
         * @brief The module of a pointwise loss: its options, and the loss and gradients of two
         *        tensors (and a sample weight), in T (void: the arguments' own value type; float or
         *        double: converted first).
         */
        template <class Options, class T = void>
        class pointwise_loss
        {
            static_assert(std::is_void<T>::value || detail::is_loss_value<T>::value,
                          "xloss: a pointwise loss module's T must be void, float or double");

        public:

            /// The options class.
            using options_type = Options;

            /// A loss with the given options.
            explicit pointwise_loss(const Options& options = Options()) noexcept
                : m_options(options)
            {
            }

            /// The loss.
            template <class E1, class E2>
            auto operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const
            {
                return pointwise::loss(as_value(input), as_value(target), m_options);
            }

            /// The loss with a sample weight.
            template <class E1, class E2, class W>
            auto operator()(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                            const xt::xexpression<W>& sample_weight) const
            {
                return pointwise::loss(as_value(input), as_value(target), m_options, sample_weight);
            }

            /// operator(), libtorch's name.
            template <class E1, class E2>
            auto forward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target) const
            {
                return (*this)(input, target);
            }

            /// The input's gradient for `grad_output` (default 1).
            template <class E1, class E2, class G = double>
            auto backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                          const G& grad_output = 1.0) const
            {
                return pointwise::backward(grad_output, as_value(input), as_value(target), m_options);
            }

            /// backward() with a sample weight.
            template <class E1, class E2, class G, class W>
            auto backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target, const G& grad_output,
                          const xt::xexpression<W>& sample_weight) const
            {
                return pointwise::backward(grad_output, as_value(input), as_value(target), m_options, sample_weight);
            }

            /// The target's gradient for `grad_output` (default 1).
            template <class E1, class E2, class G = double>
            auto target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                 const G& grad_output = 1.0) const
            {
                return pointwise::target_backward(grad_output, as_value(input), as_value(target), m_options);
            }

            /// target_backward() with a sample weight.
            template <class E1, class E2, class G, class W>
            auto target_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                 const G& grad_output, const xt::xexpression<W>& sample_weight) const
            {
                return pointwise::target_backward(grad_output, as_value(input), as_value(target), m_options,
                                                  sample_weight);
            }

            /// The loss and the gradients in one pass.
            template <class E1, class E2>
            auto forward_backward(const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                                  bool with_target_grad = false) const
            {
                return pointwise::forward_backward(as_value(input), as_value(target), m_options, with_target_grad);
            }

            /// The reduction.
            xloss::reduction reduction() const noexcept
            {
                return m_options.reduction();
            }

            /// The loss's options.
            const Options& options() const noexcept
            {
                return m_options;
            }

        protected:

            /// The options.
            Options m_options;

        private:

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
        };
    }
}

#endif
