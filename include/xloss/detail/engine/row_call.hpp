/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_CALL_HPP
#define XLOSS_DETAIL_ENGINE_ROW_CALL_HPP

// What the calls of every row loss share: the grad_output they take, the loss and the gradient
// into new arrays, and per-row parts reduced as the loss. A call derives from row_call_base<Call, V>
// and offers loss_shape(), shape(), reduced(), func(), divisor(), grad_scale() (what multiplies a
// scalar grad_output: 1 / divisor) and run(row_outputs) (for loss() and gradient()).

#include <cstddef>
#include <optional>
#include <type_traits>
#include <vector>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../core/allocate.hpp"
#include "../core/grad_output.hpp"
#include "../core/output.hpp"
#include "row_engine.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Where a call's grad_output array is spread to the loss's shape: in the compute type, so that
            /// 16-bit logits do not round it.
            template <class V>
            using grad_rows = std::optional<xt::xarray<compute_t<V>>>;

            /// An `_out` call's outputs: the loss and the gradient; the call's and the gradient's names
            /// for the outputs' messages.
            template <class LO, class GO>
            struct out_args
            {
                LO& loss;
                GO& grad;
                const char* func;
                const char* grad_name;
            };

            /**
             * The body of a row loss's forward_backward_out: checks the outputs' shapes against `call`;
             * writes into them in place with `run(outputs)` (row_checks::before_writing: nothing is written
             * on an error), or, for strided or resized outputs and outputs that share memory with the
             * inputs (which the passes read again after writing), assigns what `aside()` computes
             * (a result with `loss` and a gradient `grad_of(result)`).
             */
            template <class V, class Call, class LO, class GO, class Aside, class GradOf, class Run>
            void write_out(const Call& call, out_args<LO, GO> to, Aside&& aside, GradOf&& grad_of, Run&& run)
            {
                const char* func = to.func;
                const bool loss_fits = check_loss_out(to.loss, call.loss_shape(), func, "loss");
                const bool grad_fits = check_out_shape(to.grad, call.shape(), func, to.grad_name, "the logits' shape");
                V* g = grad_fits ? writable_data<V>(to.grad) : nullptr;
                V* lo = nullptr;
                if constexpr (!is_scalar_value<LO>::value)
                {
                    lo = loss_fits && !call.reduced() ? writable_data<V>(to.loss) : nullptr;
                }
                const std::size_t loss_size = call.loss_shape().empty() ? 1 : size_of(call.loss_shape());
                if (!g || (!call.reduced() && !lo) || call.overlaps_inputs(g, size_of(call.shape()))
                    || (lo && call.overlaps_inputs(lo, loss_size)))
                {
                    const auto r = aside();
                    assign_loss(to.loss, r.loss);
                    assign_out(to.grad, grad_of(r));
                    return;
                }
                grad_rows<V> rows;
                row_outputs<V> out = call.grad_output(1.0, rows);
                out.loss = lo;
                out.grad_student = g;
                const double value = run(out);
                if (call.reduced())
                {
                    // Rounded to V first, as the loss computed aside and the allocating calls' are.
                    store_loss(to.loss, static_cast<double>(stored_as<V>(value)));
                }
            }

            template <class Call, class V>
            class row_call_base
            {
            public:

                /**
                 * What the engine takes for a grad_output: a scalar or 0-d expression for a reduced
                 * loss, or for `none` an expression broadcastable to the rows' shape (evaluated into
                 * `rows`), or a scalar.
                 */
                template <class G>
                row_outputs<V> grad_output(const G& g, grad_rows<V>& rows) const
                {
                    row_outputs<V> out;
                    visit_grad_output(
                        g, call().loss_shape(), call().func(),
                        [&](double v)
                        {
                            out.grad_scalar = v * call().grad_scale();
                        },
                        [&](const auto& e)
                        {
                            rows.emplace(xt::broadcast(xt::cast<compute_t<V>>(e), call().loss_shape()));
                            out.grad_output = rows->data();
                        });
                    return out;
                }

                /// The loss, into a new array.
                xt::xarray<V> loss() const
                {
                    xt::xarray<V> loss = new_array<V>(call().loss_shape());
                    row_outputs<V> out;
                    out.loss = call().reduced() ? nullptr : loss.data();
                    const double value = call().run(out);
                    if (call().reduced())
                    {
                        loss() = stored_as<V>(value);
                    }
                    return loss;
                }

                /// The gradient for grad_output, into a new array of the logits' shape.
                template <class G>
                xt::xarray<V> gradient(const G& g) const
                {
                    grad_rows<V> spread;
                    row_outputs<V> out = grad_output(g, spread);
                    xt::xarray<V> grad = new_array<V>(call().shape());
                    out.grad_student = grad.data();
                    call().run(out);
                    return grad;
                }

            protected:

                /// Part p of `parts` (two per row), reduced as the loss (summed in row order).
                xt::xarray<V> reduce_part(const std::vector<double>& parts, std::size_t p) const
                {
                    xt::xarray<V> r = new_array<V>(call().loss_shape());
                    const std::size_t rows = parts.size() / 2;
                    double total = 0.;
                    for (std::size_t k = 0; k < rows; ++k)
                    {
                        if (!call().reduced())
                        {
                            r.data()[k] = stored_as<V>(parts[2 * k + p]);
                        }
                        total += parts[2 * k + p];
                    }
                    if (call().reduced())
                    {
                        r() = stored_as<V>(total / call().divisor());
                    }
                    return r;
                }

            private:

                const Call& call() const noexcept
                {
                    return static_cast<const Call&>(*this);
                }
            };
        }
    }
}

#endif
