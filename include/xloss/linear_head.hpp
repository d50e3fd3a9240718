/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_LINEAR_HEAD_HPP
#define XLOSS_LINEAR_HEAD_HPP

/// @file
/// An output layer (a language model's lm_head) given to the fused linear losses: its weight and,
/// when it has one, its bias.

#include <type_traits>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)

#include "xloss_config.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        /**
         * @brief The weight (classes x hidden, row-major as PyTorch's `lm_head.weight`) and the bias
         *        (classes) of an output layer, made by linear(); it refers to both, which must outlive it.
         *        The logits of hidden states h are h W^T + b, as PyTorch's F.linear(h, W, b).
         */
        template <class W, class B = void>
        struct linear_head
        {
            static constexpr bool has_bias = true; ///< whether the layer adds a bias
            const W& weight;                       ///< (classes, hidden)
            const B& bias;                         ///< (classes)
        };

        /// @brief An output layer without a bias.
        template <class W>
        struct linear_head<W, void>
        {
            static constexpr bool has_bias = false; ///< whether the layer adds a bias
            const W& weight;                        ///< (classes, hidden)
        };

        /// @brief The output layer of weight `weight` (classes x hidden), without a bias.
        template <class W>
        inline linear_head<W> linear(const xt::xexpression<W>& weight) noexcept
        {
            return {weight.derived_cast()};
        }

        /// @brief The output layer of weight `weight` (classes x hidden) and bias `bias` (classes).
        template <class W, class B>
        inline linear_head<W, B> linear(const xt::xexpression<W>& weight, const xt::xexpression<B>& bias) noexcept
        {
            return {weight.derived_cast(), bias.derived_cast()};
        }

        /**
         * @brief A teacher given as its last hidden states (rows..., hidden) and its output layer, made
         *        by teacher_layer(): the fused linear divergences compute its logits chunk by chunk, as
         *        the student's. It refers to both, which must outlive it.
         */
        template <class H, class Head>
        struct linear_teacher
        {
            const H& hidden; ///< the teacher's hidden states
            Head head;       ///< the teacher's output layer
        };

        /// @brief The teacher of hidden states `hidden` and output layer `head` (see linear_teacher).
        template <class H, class Head>
        inline linear_teacher<H, Head> teacher_layer(const xt::xexpression<H>& hidden, const Head& head) noexcept
        {
            return {hidden.derived_cast(), head};
        }

        template <class T>
        struct is_linear_teacher : std::false_type
        {
        };

        template <class H, class Head>
        struct is_linear_teacher<linear_teacher<H, Head>> : std::true_type
        {
        };
    }
}

#endif
