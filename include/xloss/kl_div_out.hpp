/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_KL_DIV_OUT_HPP
#define XLOSS_KL_DIV_OUT_HPP

/// @file
/// The KL-divergence loss, its gradients and the fused pass, written into
/// containers the caller provides: no allocation in a training loop.

#include <algorithm>
#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "detail/error.hpp"
#include "detail/kl_div_impl.hpp"
#include "kl_div.hpp"
#include "kl_div_options.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @ingroup kl_div
         * @brief kl_div() written into `out`, allocating nothing.
         *
         * @param out for `reduction::none`, a container of the loss's (broadcast) shape; for a reduced
         *        loss, a 0-d container or a float or double variable
         * @return out
         * @throw std::invalid_argument, leaving `out` untouched, if the shapes do not broadcast or
         *        `out` does not have the loss's shape
         *
         * Allocation-free when `out` is contiguous row-major of the loss's value type (any container,
         * or a scalar); otherwise the loss is computed into a temporary and assigned.
         */
        template <class O, class E1, class E2>
        O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                      const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_backward() written into `grad_input`, which must have the input's shape.
         * @return grad_input
         * @throw std::invalid_argument, leaving `grad_input` untouched, for shapes that do not fit
         *
         * Allocation-free when input and target have the same shape and `grad_input` is contiguous
         * row-major of the loss's value type.
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                               const xt::xexpression<E2>& target, const kl_div_options& options = {});

        /**
         * @ingroup kl_div
         * @brief kl_div_target_backward() written into `grad_target`, which must have the target's shape.
         * @return grad_target
         */
        template <class O, class G, class E1, class E2>
        O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options = {});

        namespace detail
        {
            /// e's elements to write in place, when contiguous row-major of type V; else nullptr.
            template <class V, class E>
            inline V* writable_data(E& e)
            {
                return const_cast<V*>(contiguous_data<V>(e));
            }

            /// Whether xtensor's assignment resizes an output of type E to a shape of `rank` axes: any
            /// rank for xt::xarray, N for xt::xtensor<T, N>; never for fixed shapes, views, adaptors.
            template <class E>
            struct resizable
            {
                static constexpr bool value = false;

                static constexpr bool to_rank(std::size_t) noexcept
                {
                    return false;
                }
            };

            template <class EC, xt::layout_type L, class SC, class Tag>
            struct resizable<xt::xarray_container<EC, L, SC, Tag>>
            {
                static constexpr bool value = true;

                static constexpr bool to_rank(std::size_t) noexcept
                {
                    return true;
                }
            };

            template <class EC, std::size_t N, xt::layout_type L, class Tag>
            struct resizable<xt::xtensor_container<EC, N, L, Tag>>
            {
                static constexpr bool value = true;

                static constexpr bool to_rank(std::size_t rank) noexcept
                {
                    return rank == N;
                }
            };

            /**
             * Checks a caller's output against the shape it will hold. Returns true when it has that shape;
             * false when it has another but xtensor's assignment would resize it (an xt::xarray, an
             * xt::xtensor of that rank), which assign_out then does; throws for any other output.
             */
            template <class E>
            inline bool check_out_shape(const E& out, const shape_type& expected, const char* func, const char* name,
                                        const char* expected_what)
            {
                const shape_type got = to_shape(out.shape());
                if (got == expected)
                {
                    return true;
                }
                if (resizable<E>::to_rank(expected.size()))
                {
                    return false;
                }
                detail::raise(shape_error(func, name, got, expected_what, expected));
            }

            /// Writes a result computed aside into a caller's output (its shape checked before, or resized
            /// here when check_out_shape allowed it), in row-major order, whatever the output's layout.
            template <class O, class R>
            inline void assign_out(O& out, const R& result)
            {
                if constexpr (resizable<O>::value)
                {
                    if (!std::equal(result.shape().begin(), result.shape().end(), out.shape().begin(),
                                    out.shape().end()))
                    {
                        // GCC 12 sees a null destination in xtensor's copy of an empty (0-d) shape.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"
#endif
                        out.resize(to_shape(result.shape()));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
                    }
                }
                std::copy(result.cbegin(), result.cend(), out.begin());
            }

            template <class V, bool wrt_target, class O, class G, class E1, class E2>
            inline O& gradient_out(O& out, const G& grad_output, const E1& x, const E2& t,
                                   const kl_div_options& options, const char* func)
            {
                const loss_setup s = make_setup(x, t, options, func);
                const shape_type& arg_shape = wrt_target ? s.target_shape : s.input_shape;
                const bool same_shape = check_out_shape(out, arg_shape, func, wrt_target ? "grad_target" : "grad_input",
                                                        wrt_target ? "the target's shape" : "the input's shape");
                if (needs_general(options))
                {
                    assign_out(out, general_gradient<V, wrt_target>(grad_output, x, t, no_weight<V>, options, func));
                    return out;
                }
                V* data = same_shape && arg_shape == s.shape ? writable_data<V>(out) : nullptr;
                if (!data)
                {
                    assign_out(out, gradient<V, wrt_target>(grad_output, x, t, options, func));
                    return out;
                }
                gradient_into<V, wrt_target>(data, grad_output, x, t, s, options, func);
                return out;
            }
        }

        template <class O, class E1, class E2>
        inline O& kl_div_out(O& out, const xt::xexpression<E1>& input, const xt::xexpression<E2>& target,
                             const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            constexpr const char* func = "kl_div_out";
            const auto& x = input.derived_cast();
            const auto& t = target.derived_cast();
            const detail::loss_setup s = detail::make_setup(x, t, options, func);
            const detail::shape_type loss_shape = detail::make_plan(s, options, func).out_shape;
            const bool reduce = loss_shape.empty() && options.reduction() != reduction::none;
            if (detail::needs_general(options))
            {
                // Computed aside, then assigned: out stays untouched if anything throws.
                if constexpr (std::is_arithmetic<O>::value)
                {
                    if (!loss_shape.empty())
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": the loss has shape "
                                                            + detail::shape_to_string(loss_shape)
                                                            + "; a scalar out needs a 0-d loss"));
                    }
                    out = static_cast<O>(detail::general_forward<V>(x, t, detail::no_weight<V>, options, func)());
                }
                else
                {
                    detail::check_out_shape(out, loss_shape, func, "out", "the loss's shape");
                    detail::assign_out(out, detail::general_forward<V>(x, t, detail::no_weight<V>, options, func));
                }
                return out;
            }
            auto pass = [&](V* loss)
            {
                return detail::with_ops(options,
                                        [&](const auto& ops)
                                        {
                                            return detail::loss_pass<V>(ops, x, t, s, reduce, loss);
                                        });
            };
            if constexpr (std::is_arithmetic<O>::value)
            {
                static_assert(std::is_floating_point<O>::value,
                              "xloss::kl_div_out: a scalar out must be float or double");
                if (!reduce)
                {
                    detail::raise(
                        std::invalid_argument("xloss::kl_div_out: reduction 'none' needs an out container of shape "
                                              + detail::shape_to_string(s.shape) + ", not a scalar"));
                }
                out = static_cast<O>(pass(nullptr));
            }
            else
            {
                const bool same_shape = detail::check_out_shape(out, reduce ? detail::shape_type{} : s.shape, func,
                                                                "out", "the loss's shape");
                if (!same_shape)
                {
                    detail::assign_out(out, kl_div(input, target, options));
                }
                else if (reduce)
                {
                    out() = static_cast<typename O::value_type>(pass(nullptr));
                }
                else if (V* data = detail::writable_data<V>(out))
                {
                    pass(data);
                }
                else
                {
                    detail::assign_out(out, kl_div(input, target, options));
                }
            }
            return out;
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_backward_out(O& grad_input, const G& grad_output, const xt::xexpression<E1>& input,
                                      const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::gradient_out<V, false>(grad_input, grad_output, input.derived_cast(), target.derived_cast(),
                                                  options, "kl_div_backward_out");
        }

        template <class O, class G, class E1, class E2>
        inline O& kl_div_target_backward_out(O& grad_target, const G& grad_output, const xt::xexpression<E1>& input,
                                             const xt::xexpression<E2>& target, const kl_div_options& options)
        {
            using V = detail::loss_value_t<E1, E2>;
            return detail::gradient_out<V, true>(grad_target, grad_output, input.derived_cast(), target.derived_cast(),
                                                 options, "kl_div_target_backward_out");
        }
    }
}

#endif
