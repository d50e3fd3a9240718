/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_TORCH_LINEAR_FUNCTION_HPP
#define XLOSS_DETAIL_TORCH_LINEAR_FUNCTION_HPP

// The libtorch autograd function of the fused linear losses: the forward computes the loss and the
// gradients of the hidden states, the weight and the bias chunk by chunk (no logits kept), and
// keeps them for backward, which scales them by grad_output.

#include <string>

#include "../../fused_linear_cross_entropy.hpp"
#include "tensors.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            namespace torch_bridge
            {
                /// What the autograd function needs of a fused linear loss (held in the autograd graph).
                class torch_linear_loss : public ::torch::CustomClassHolder
                {
                public:

                    /// The loss; with `grads`, also the gradients of hidden, weight and bias (grad_output 1).
                    virtual ::torch::Tensor forward(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                    const ::torch::Tensor& bias, const ::torch::Tensor& labels,
                                                    ::torch::Tensor* grads) const = 0;
                };

                /// A cross-entropy-like fused loss `Loss` (FusedLinearCrossEntropyLoss): loss(h, head, labels).
                template <class Loss>
                class adapted_linear_loss final : public torch_linear_loss
                {
                public:

                    explicit adapted_linear_loss(const Loss& loss)
                        : m_loss(loss)
                    {
                    }

                    ::torch::Tensor forward(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                            const ::torch::Tensor& bias, const ::torch::Tensor& labels,
                                            ::torch::Tensor* grads) const override
                    {
                        return with_value_type<dtypes::float_double>(
                            hidden,
                            [&](auto v)
                            {
                                using V = decltype(v);
                                return with_labels(labels,
                                                   [&](const auto& y)
                                                   {
                                                       return run<V>(hidden, weight, bias, y, grads);
                                                   });
                            });
                    }

                private:

                    template <class V, class Y>
                    ::torch::Tensor run(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                        const ::torch::Tensor& bias, const Y& labels, ::torch::Tensor* grads) const
                    {
                        const auto h = view<V>(hidden);
                        const auto w = view<V>(weight);
                        if (bias.defined())
                        {
                            const auto b = view<V>(bias);
                            return result(linear(w, b), h, labels, grads);
                        }
                        return result(linear(w), h, labels, grads);
                    }

                    template <class Head, class H, class Y>
                    ::torch::Tensor result(const Head& head, const H& hidden, const Y& labels,
                                           ::torch::Tensor* grads) const
                    {
                        using V = typename H::value_type;
                        if (grads == nullptr)
                        {
                            return to_tensor(xt::xarray<V>(m_loss(hidden, head, labels)));
                        }
                        auto r = m_loss.forward_backward(hidden, head, labels);
                        grads[0] = to_tensor(std::move(r.grad_hidden));
                        grads[1] = to_tensor(std::move(r.grad_weight));
                        grads[2] = head.has_bias ? to_tensor(std::move(r.grad_bias)) : ::torch::Tensor();
                        return to_tensor(std::move(r.loss));
                    }

                    Loss m_loss;
                };

                /// The autograd function: forward(hidden, weight, bias, labels, loss, keep_grad).
                class linear_loss_function : public ::torch::autograd::Function<linear_loss_function>
                {
                public:

                    static ::torch::Tensor forward(::torch::autograd::AutogradContext* ctx,
                                                   const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                   const c10::optional<::torch::Tensor>& bias,
                                                   const ::torch::Tensor& labels,
                                                   const c10::intrusive_ptr<torch_linear_loss>& loss, bool keep_grad)
                    {
                        ::torch::Tensor grads[3];
                        ::torch::Tensor value = loss->forward(hidden, weight, bias.value_or(::torch::Tensor()), labels,
                                                              keep_grad ? grads : nullptr);
                        if (keep_grad)
                        {
                            ctx->saved_data["grad_hidden"] = grads[0];
                            ctx->saved_data["grad_weight"] = grads[1];
                            ctx->saved_data["grad_bias"] = grads[2];
                        }
                        return value;
                    }

                    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                                     ::torch::autograd::variable_list grads)
                    {
                        check_first_order("a fused linear loss");
                        const ::torch::Tensor& grad_output = grads[0];
                        const bool unit = (grad_output == 1).all().item<bool>();
                        ::torch::autograd::variable_list out;
                        for (const char* name : {"grad_hidden", "grad_weight", "grad_bias"})
                        {
                            auto it = ctx->saved_data.find(name);
                            if (it == ctx->saved_data.end())
                            {
                                throw std::runtime_error(
                                    "xloss::torch: a fused linear loss keeps its gradients for one "
                                    "backward pass; a second backward through it (retain_graph) "
                                    "is not supported");
                            }
                            ::torch::Tensor g = it->second.toTensor();
                            ctx->saved_data.erase(name);
                            if (g.defined() && !unit)
                            {
                                g.mul_(grad_output);
                            }
                            out.push_back(g);
                        }
                        out.resize(6);
                        return out;
                    }
                };

                /// A fused linear loss of the caller's tensors through the autograd function.
                template <class Loss>
                ::torch::Tensor run_linear(const Loss& loss, const char* func, const ::torch::Tensor& hidden,
                                           const ::torch::Tensor& weight, const ::torch::Tensor& bias,
                                           const ::torch::Tensor& labels)
                {
                    check_values(hidden, func, "hidden");
                    check_same_type(weight, hidden, func, "weight", "hidden");
                    if (bias.defined())
                    {
                        check_same_type(bias, hidden, func, "bias", "hidden");
                    }
                    check_labels(labels, func, "labels");
                    if (loss.options().reduction() == xloss::reduction::none)
                    {
                        fail(func, "options",
                             "ask for reduction none; xloss::torch's fused linear losses are reduced (mean or sum)");
                    }
                    const auto type = compute_type(hidden);
                    const ::torch::Tensor h = prepared(hidden, type);
                    const ::torch::Tensor w = prepared(weight, type);
                    const ::torch::Tensor b = prepared(bias, type);
                    const bool keep_grad =
                        ::torch::autograd::GradMode::is_enabled()
                        && (h.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
                    const c10::intrusive_ptr<torch_linear_loss> adapted =
                        c10::make_intrusive<adapted_linear_loss<Loss>>(loss);
                    ::torch::Tensor value = linear_loss_function::apply(
                        h, w, b.defined() ? c10::optional<::torch::Tensor>(b) : c10::nullopt, prepared_labels(labels),
                        adapted, keep_grad);
                    return value.scalar_type() == hidden.scalar_type() ? value : value.to(hidden.scalar_type());
                }
            }
        }
    }
}

#endif
