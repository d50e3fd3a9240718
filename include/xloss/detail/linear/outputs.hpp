/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_LINEAR_OUTPUTS_HPP
#define XLOSS_DETAIL_LINEAR_OUTPUTS_HPP

// What every fused linear call writes, whatever its loss: the loss alone into a new array, or the
// loss and the layer's gradients into a fused_linear_result (resized only when its shapes differ,
// computed aside when it shares memory with an input). A call offers shapes(), has_bias(),
// reduced(), loss_shape(), overlaps_inputs(p, n) and run(loss, gradients, workspace).

#include <type_traits>
#include <utility>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../fused_linear_options.hpp"
#include "../../fused_linear_result.hpp"
#include "../core/allocate.hpp"
#include "../core/expression.hpp"
#include "chunks.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The value type of a fused linear loss of hidden states H and an output layer Head.
            template <class H, class Head>
            using linear_value_t = loss_value_t<H, std::decay_t<decltype(std::declval<Head>().weight)>>;

            /// The call's loss, into a new array.
            template <class V, class Call>
            xt::xarray<V> linear_loss(const Call& call)
            {
                xt::xarray<V> loss = new_array<V>(call.loss_shape());
                linear_workspace<V> ws;
                const double value = call.run(call.reduced() ? nullptr : loss.data(), {}, ws);
                if (call.reduced())
                {
                    loss() = static_cast<V>(value);
                }
                return loss;
            }

            /// Gives `a` the shape s, keeping its memory when it has it (zeros when accumulating).
            template <class V>
            void fit_output(xt::xarray<V>& a, const shape_type& s, gradient_write write)
            {
                if (to_shape(a.shape()) != s)
                {
                    a = new_array<V>(s);
                    if (write == gradient_write::accumulate)
                    {
                        a.fill(V(0));
                    }
                }
            }

            template <class Call, class V>
            void run_into(const Call& call, fused_linear_result<V>& r, linear_workspace<V>& ws, gradient_write write)
            {
                const linear_shapes& s = call.shapes();
                fit_output(r.loss, call.loss_shape(), write);
                fit_output(r.grad_hidden, s.hidden, write);
                fit_output(r.grad_weight, {s.classes, s.hidden_size}, write);
                fit_output(r.grad_bias, {call.has_bias() ? s.classes : 0}, write);
                linear_gradients<V> grads;
                grads.hidden = r.grad_hidden.data();
                grads.weight = r.grad_weight.data();
                grads.bias = call.has_bias() ? r.grad_bias.data() : nullptr;
                grads.write = write;
                const double value = call.run(call.reduced() ? nullptr : r.loss.data(), grads, ws);
                if (call.reduced())
                {
                    r.loss() = static_cast<V>(value);
                }
            }

            /// The loss and the gradients into `r`; aside first when `r` shares memory with an input.
            template <class Call, class V>
            void linear_forward_backward_out(const Call& call, fused_linear_result<V>& r, linear_workspace<V>& ws,
                                             gradient_write write)
            {
                const bool shared = call.overlaps_inputs(r.loss.data(), r.loss.size())
                                    || call.overlaps_inputs(r.grad_hidden.data(), r.grad_hidden.size())
                                    || call.overlaps_inputs(r.grad_weight.data(), r.grad_weight.size())
                                    || call.overlaps_inputs(r.grad_bias.data(), r.grad_bias.size());
                if (!shared)
                {
                    run_into(call, r, ws, write);
                    return;
                }
                fused_linear_result<V> aside;
                if (write == gradient_write::accumulate)
                {
                    aside = r;
                }
                run_into(call, aside, ws, write);
                r = std::move(aside);
            }
        }
    }
}

#endif
