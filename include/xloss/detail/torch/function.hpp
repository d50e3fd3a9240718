/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_TORCH_FUNCTION_HPP
#define XLOSS_DETAIL_TORCH_FUNCTION_HPP

// One libtorch autograd function for every xloss loss. A reduced loss computes its input's gradient
// in the forward passes and keeps it for backward (Liger-Kernel's approach: no second pass over
// the logits); an unreduced one keeps its arguments and computes the gradient for grad_output in
// backward.

#include <string>
#include <utility>

#include "../../reduction.hpp"
#include "tensors.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            namespace torch_bridge
            {
                /// The prepared arguments: the input (the student's logits), its target (undefined
                /// for the cross-entropy) and the labels (undefined without).
                struct loss_args
                {
                    ::torch::Tensor input;
                    ::torch::Tensor target;
                    ::torch::Tensor labels;
                };

                /// What the autograd function needs of a loss (held in the autograd graph).
                class torch_loss : public ::torch::CustomClassHolder
                {
                public:

                    virtual bool reduced() const = 0;
                    /// The loss; with `grad`, also the input's gradient for grad_output 1 into it.
                    virtual ::torch::Tensor forward(const loss_args& args, ::torch::Tensor* grad) const = 0;
                    /// The input's gradient for `grad_output` (of the loss's shape; of the input's type for `none`).
                    virtual ::torch::Tensor backward(const loss_args& args,
                                                     const ::torch::Tensor& grad_output) const = 0;
                };

                /// A loss adapted by `Call`, whose static members call it on xtensor views:
                /// `loss(loss, V, args)`, `forward_backward(loss, V, args)` (a result with `.loss` and
                /// the input's gradient as `grad(r)`) and `backward(loss, V, args, grad_output view)`.
                template <class Loss, class Call>
                class adapted_loss final : public torch_loss
                {
                public:

                    explicit adapted_loss(const Loss& loss)
                        : m_loss(loss)
                    {
                    }

                    bool reduced() const override
                    {
                        return m_loss.options().reduction() != xloss::reduction::none;
                    }

                    ::torch::Tensor forward(const loss_args& args, ::torch::Tensor* grad) const override
                    {
                        return with_value_type<Call::read>(
                            args.input,
                            [&](auto v)
                            {
                                using V = decltype(v);
                                if (grad == nullptr)
                                {
                                    return to_tensor(xt::xarray<V>(Call::template loss<V>(m_loss, args)));
                                }
                                auto r = Call::template forward_backward<V>(m_loss, args);
                                *grad = to_tensor(std::move(Call::grad(r)));
                                return to_tensor(std::move(r.loss));
                            });
                    }

                    ::torch::Tensor backward(const loss_args& args, const ::torch::Tensor& grad_output) const override
                    {
                        return with_value_type<Call::read>(
                            args.input,
                            [&](auto v)
                            {
                                using V = decltype(v);
                                if (reduced()) // one value, as a double: not rounded to a 16-bit V
                                {
                                    return to_tensor(xt::xarray<V>(
                                        Call::template backward<V>(m_loss, args, grad_output.item<double>())));
                                }
                                return to_tensor(
                                    xt::xarray<V>(Call::template backward<V>(m_loss, args, view<V>(grad_output))));
                            });
                    }

                private:

                    Loss m_loss;
                };

                /// The autograd function: forward(input, target, labels, loss, keep_grad).
                class loss_function : public ::torch::autograd::Function<loss_function>
                {
                public:

                    /// `target` and `labels` are optional: libtorch's autograd takes no undefined tensor.
                    static ::torch::Tensor forward(::torch::autograd::AutogradContext* ctx,
                                                   const ::torch::Tensor& input,
                                                   const c10::optional<::torch::Tensor>& target,
                                                   const c10::optional<::torch::Tensor>& labels,
                                                   const c10::intrusive_ptr<torch_loss>& loss, bool keep_grad)
                    {
                        const loss_args args{input, target.value_or(::torch::Tensor()),
                                             labels.value_or(::torch::Tensor())};
                        ::torch::Tensor grad;
                        ::torch::Tensor value = loss->forward(args, keep_grad && loss->reduced() ? &grad : nullptr);
                        if (keep_grad)
                        {
                            ctx->saved_data["loss"] = c10::IValue::make_capsule(loss);
                            if (loss->reduced())
                            {
                                ctx->saved_data["grad"] = grad;
                            }
                            // The arguments, for a gradient computed in backward: `none`'s, and a half
                            // reduced loss's when grad_output is not 1 (see backward).
                            if (!loss->reduced() || args.input.scalar_type() == ::torch::kHalf)
                            {
                                ctx->save_for_backward({args.input, args.target, args.labels});
                            }
                        }
                        return value;
                    }

                    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                                     ::torch::autograd::variable_list grads)
                    {
                        check_first_order("a loss");
                        const auto loss =
                            c10::static_intrusive_pointer_cast<torch_loss>(ctx->saved_data["loss"].toCapsule());
                        const ::torch::Tensor& grad_output = grads[0];
                        ::torch::Tensor grad = kept_grad(ctx);
                        const bool unit = loss->reduced() && (grad_output == 1).all().item<bool>();
                        if (loss->reduced() && (unit || grad.scalar_type() != ::torch::kHalf))
                        {
                            // grad_output 1 (a loss's backward()) takes the kept gradient as it is.
                            if (!unit)
                            {
                                grad.mul_(grad_output);
                            }
                        }
                        else
                        {
                            // `none`, or a half reduced loss scaled (fp16 loss scaling): its kept gradient is
                            // rounded to half already, whose range loses the entries below 6e-8 that the
                            // scale exists to keep, so the gradient is computed again for grad_output
                            // (bfloat16 has float's range: its kept gradient is scaled as float's is).
                            const auto saved = ctx->get_saved_variables();
                            const loss_args args{saved[0], saved[1], saved[2]};
                            grad = loss->backward(args, loss->reduced()
                                                            ? grad_output
                                                            : grad_output.to(args.input.scalar_type()).contiguous());
                        }
                        return {grad, ::torch::Tensor(), ::torch::Tensor(), ::torch::Tensor(), ::torch::Tensor()};
                    }

                private:

                    /// The gradient kept by forward (undefined for `none`), taken out of the graph so that
                    /// autograd can keep it as the input's .grad without a copy.
                    static ::torch::Tensor kept_grad(::torch::autograd::AutogradContext* ctx)
                    {
                        const auto loss =
                            c10::static_intrusive_pointer_cast<torch_loss>(ctx->saved_data["loss"].toCapsule());
                        if (!loss->reduced())
                        {
                            return ::torch::Tensor();
                        }
                        return take_kept(ctx, "grad", "a reduced loss");
                    }
                };

                /// A caller's tensor, its argument's name (for the error messages) and whether the loss
                /// needs it.
                struct named_tensor
                {
                    ::torch::Tensor tensor;
                    const char* name;
                    bool required = true;
                };

                /// `loss` of the caller's tensors through the autograd function, as `Call` calls it: the
                /// arguments checked, converted to the type its kernels read (Call::read) and made
                /// contiguous (libtorch operations, which autograd goes back through), the loss in the
                /// input's dtype.
                template <class Call, class Loss>
                ::torch::Tensor run(const Loss& loss, const char* func, const named_tensor& input,
                                    const named_tensor& target, const named_tensor& labels)
                {
                    check_values(input.tensor, func, input.name);
                    for (const named_tensor* t : {&target, &labels})
                    {
                        if (t->required && !t->tensor.defined())
                        {
                            fail(func, t->name, "is an undefined tensor");
                        }
                    }
                    const bool grad_mode = ::torch::autograd::GradMode::is_enabled();
                    if (target.tensor.defined())
                    {
                        check_same_type(target.tensor, input.tensor, func, target.name, input.name);
                        if (grad_mode && target.tensor.requires_grad())
                        {
                            fail(func, target.name,
                                 std::string("requires grad; xloss::torch gives the gradient w.r.t. ") + input.name
                                     + " only (.detach() it)");
                        }
                    }
                    if (labels.tensor.defined())
                    {
                        check_labels(labels.tensor, func, labels.name);
                    }
                    const auto type = compute_type(input.tensor, Call::read);
                    const loss_args args{prepared(input.tensor, type), prepared(target.tensor, type),
                                         prepared_labels(labels.tensor)};
                    const bool keep_grad = grad_mode && args.input.requires_grad();
                    const auto optional = [](const ::torch::Tensor& t)
                    {
                        return t.defined() ? c10::optional<::torch::Tensor>(t) : c10::nullopt;
                    };
                    ::torch::Tensor value = loss_function::apply(
                        args.input, optional(args.target), optional(args.labels),
                        c10::intrusive_ptr<torch_loss>(c10::make_intrusive<adapted_loss<Loss, Call>>(loss)), keep_grad);
                    const auto input_type = input.tensor.scalar_type();
                    return value.scalar_type() == input_type ? value : value.to(input_type);
                }
            }
        }
    }
}

#endif
