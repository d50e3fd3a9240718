/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_POINTWISE_HPP
#define XLOSS_DETAIL_ENGINE_POINTWISE_HPP

// The pointwise engine: one pass over two expressions of a broadcast shape applies an op set
// (term, input gradient, target gradient), summing the terms or writing them, and writing the
// gradients asked for.

#include <cstddef>
#include <type_traits>

#include "../core/expression.hpp"
#include "../kernels/batch_loops.hpp"
#include "walk.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /**
             * A pointwise loss's three ops, as objects (some carry parameters): the term, the gradient
             * w.r.t. the input and w.r.t. the target. Each takes (x, t, g), scalars or xsimd batches of
             * one type: input, target and the incoming gradient (which the term ignores).
             */
            template <class Term, class InputGrad, class TargetGrad>
            struct op_set
            {
                Term term;
                InputGrad input_grad;
                TargetGrad target_grad;
            };

            /// Shapes and divisor of one call.
            struct loss_setup
            {
                shape_type input_shape;
                shape_type target_shape;
                shape_type shape; ///< the broadcast shape: the shape of the `none` loss
                std::size_t size;
                double divisor; ///< what the reduction divides the sum by (1 for none and sum)
                int threads;
            };

            /// Where a pointwise pass writes, over the broadcast shape; a null pointer skips that output.
            template <class V>
            struct pointwise_outputs
            {
                V* loss = nullptr;        ///< the `none` loss (when the pass does not reduce)
                V* grad_input = nullptr;  ///< the input gradient
                V* grad_target = nullptr; ///< the target gradient
                V grad_scale = 0;         ///< what multiplies the gradients: grad_output / divisor
            };

            /**
             * One block of a reduced fused pass: the terms summed into acc and the gradients asked for
             * in `out` written, each batch of x and t loaded once, the gradients to write known at
             * compile time.
             */
            template <class V, class Ops, class PX, class PT, class PG, class Acc>
            XLOSS_INLINE void summed_block_with_gradients(const Ops& ops, PX px, PT pt, PG pg, std::size_t m,
                                                          std::size_t offset, const pointwise_outputs<V>& out, Acc& acc)
            {
                using batch = default_batch<V>;
                // (A gradient not asked for stays null: no offset on a null pointer.)
                V* const grad_input = out.grad_input ? out.grad_input + offset : nullptr;
                V* const grad_target = out.grad_target ? out.grad_target + offset : nullptr;
                auto fused = [&](auto input, auto target) XLOSS_INLINE_LAMBDA
                {
                    acc.add(ops.term, px, pt, pg, m,
                            [&](const batch& xb, const batch& tb, const batch& gb, std::size_t i, std::size_t count)
                            {
                                if constexpr (decltype(input)::value)
                                {
                                    store_lanes(grad_input + i, ops.input_grad(xb, tb, gb), count);
                                }
                                if constexpr (decltype(target)::value)
                                {
                                    store_lanes(grad_target + i, ops.target_grad(xb, tb, gb), count);
                                }
                            });
                };
                using yes = std::true_type;
                using no = std::false_type;
                out.grad_input ? (out.grad_target ? fused(yes{}, yes{}) : fused(yes{}, no{})) : fused(no{}, yes{});
            }

            /**
             * One pass over input and target: returns the reduced loss (sum / divisor) when `reduce`,
             * else writes the `none` loss; writes the gradients asked for in `out`.
             */
            template <class V, class Ops, class E1, class E2, bool gradients = true>
            inline double fused_pass(const Ops& ops, const E1& x, const E2& t, const loss_setup& s, bool reduce,
                                     const pointwise_outputs<V>& out)
            {
                using batch = default_batch<V>;
                const scalar_source<V> g{out.grad_scale};
                const double total = walk<block_sum<batch>, V>(
                    x, t, g, s.shape, s.threads,
                    [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset, auto& acc)
                    {
                        if (reduce && !out.grad_input && !out.grad_target)
                        {
                            acc.add(ops.term, px, pt, pg, m);
                            return;
                        }
                        if constexpr (gradients)
                        {
                            if (reduce)
                            {
                                summed_block_with_gradients<V>(ops, px, pt, pg, m, offset, out, acc);
                                return;
                            }
                        }
                        if (out.loss)
                        {
                            map<batch>(ops.term, px, pt, pg, out.loss + offset, m);
                        }
                        if constexpr (gradients)
                        {
                            if (out.grad_input)
                            {
                                map<batch>(ops.input_grad, px, pt, pg, out.grad_input + offset, m);
                            }
                            if (out.grad_target)
                            {
                                map<batch>(ops.target_grad, px, pt, pg, out.grad_target + offset, m);
                            }
                        }
                    });
                return total / s.divisor;
            }

            /// fused_pass() for the loss alone: the gradient loops are not instantiated.
            template <class V, class Ops, class E1, class E2>
            inline double loss_pass(const Ops& ops, const E1& x, const E2& t, const loss_setup& s, bool reduce,
                                    V* loss_out)
            {
                pointwise_outputs<V> out;
                out.loss = loss_out;
                return fused_pass<V, Ops, E1, E2, false>(ops, x, t, s, reduce, out);
            }

            /// One gradient (`Op`) over the broadcast shape into `out`, for grad_output `g`: a
            /// scalar_source already divided by the divisor, or an expression broadcastable to the shape.
            template <class V, class Op, class E1, class E2, class G>
            inline void gradient_pass(Op op, const G& g, const E1& x, const E2& t, const loss_setup& s, V* out)
            {
                using batch = default_batch<V>;
                walk<block_sum<batch>, V>(x, t, g, s.shape, s.threads,
                                          [&](auto px, auto pt, auto pg, std::size_t m, std::size_t offset, auto&)
                                          {
                                              map<batch>(op, px, pt, pg, out + offset, m);
                                          });
            }
        }
    }
}

#endif
