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
#include <type_traits>
#include <utility>

#include "../../fused_linear_cross_entropy.hpp"
#include "../../fused_linear_divergence.hpp"
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

                /// No teacher: the fused cross-entropy, loss(h, head, labels).
                struct no_teacher
                {
                };

                /// A teacher's layer: its hidden states and weight, in the student's compute type and
                /// contiguous (no gradient flows to them), for loss(h, head, teacher_layer(...), labels).
                struct teacher_tensors
                {
                    ::torch::Tensor hidden;
                    ::torch::Tensor weight;
                };

                /// A fused linear loss `Loss`: the cross-entropy (FusedLinearCrossEntropyLoss) without a
                /// teacher, a divergence (fused_linear_divergence_loss) with one.
                template <class Loss, class Teacher = no_teacher>
                class adapted_linear_loss final : public torch_linear_loss
                {
                public:

                    explicit adapted_linear_loss(const Loss& loss, Teacher teacher = Teacher())
                        : m_loss(loss)
                        , m_teacher(std::move(teacher))
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
                                const auto go = [&](const auto& y)
                                {
                                    return run<V>(hidden, weight, bias, y, grads);
                                };
                                if constexpr (std::is_same<Teacher, no_teacher>::value)
                                {
                                    return with_labels(labels, go);
                                }
                                else
                                {
                                    return labels.defined() ? with_labels(labels, go) : go(all_rows);
                                }
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
                        return with_teacher<V>(
                            [&](const auto&... teacher)
                            {
                                if (grads == nullptr)
                                {
                                    return to_tensor(xt::xarray<V>(m_loss(hidden, head, teacher..., labels)));
                                }
                                auto r = m_loss.forward_backward(hidden, head, teacher..., labels);
                                grads[0] = to_tensor(std::move(r.grad_hidden));
                                grads[1] = to_tensor(std::move(r.grad_weight));
                                grads[2] = head.has_bias ? to_tensor(std::move(r.grad_bias)) : ::torch::Tensor();
                                return to_tensor(std::move(r.loss));
                            });
                    }

                    /// f() without a teacher, else f(the teacher's layer over views of its tensors).
                    template <class V, class F>
                    ::torch::Tensor with_teacher(F&& f) const
                    {
                        if constexpr (std::is_same<Teacher, no_teacher>::value)
                        {
                            return f();
                        }
                        else
                        {
                            const auto hidden = view<V>(m_teacher.hidden);
                            const auto weight = view<V>(m_teacher.weight);
                            const auto head = linear(weight);
                            return f(teacher_layer(hidden, head));
                        }
                    }

                    Loss m_loss;
                    Teacher m_teacher;
                };

                /// The autograd function: forward(hidden, weight, bias, labels, loss, keep_grad).
                class linear_loss_function : public ::torch::autograd::Function<linear_loss_function>
                {
                public:

                    static ::torch::Tensor forward(::torch::autograd::AutogradContext* ctx,
                                                   const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                   const c10::optional<::torch::Tensor>& bias,
                                                   const c10::optional<::torch::Tensor>& labels,
                                                   const c10::intrusive_ptr<torch_linear_loss>& loss, bool keep_grad)
                    {
                        ::torch::Tensor grads[3];
                        ::torch::Tensor value =
                            loss->forward(hidden, weight, bias.value_or(::torch::Tensor()),
                                          labels.value_or(::torch::Tensor()), keep_grad ? grads : nullptr);
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
                            ::torch::Tensor g = take_kept(ctx, name, "a fused linear loss");
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

                /// A teacher layer's tensors checked against the student's hidden states and prepared in
                /// their compute type.
                inline teacher_tensors prepared_teacher(const ::torch::Tensor& hidden, const ::torch::Tensor& weight,
                                                        const ::torch::Tensor& student, const char* func)
                {
                    for (const auto& [t, name] :
                         {std::pair<const ::torch::Tensor&, const char*>{hidden, "teacher_hidden"},
                          {weight, "teacher_weight"}})
                    {
                        check_same_type(t, student, func, name, "hidden");
                        if (::torch::autograd::GradMode::is_enabled() && t.requires_grad())
                        {
                            fail(func, name, "requires grad; the teacher gets no gradient (.detach() it)");
                        }
                    }
                    const auto type = compute_type(student);
                    return {prepared(hidden, type), prepared(weight, type)};
                }

                /**
                 * A fused linear loss of the caller's tensors through the autograd function: the
                 * cross-entropy (no teacher; labels required) or a divergence from `teacher` (labels
                 * optional: undefined keeps every row).
                 */
                template <class Loss, class Teacher = no_teacher>
                ::torch::Tensor run_linear(const Loss& loss, const char* func, const ::torch::Tensor& hidden,
                                           const ::torch::Tensor& weight, const ::torch::Tensor& bias,
                                           const ::torch::Tensor& labels, Teacher teacher = Teacher())
                {
                    check_values(hidden, func, "hidden");
                    check_same_type(weight, hidden, func, "weight", "hidden");
                    if (bias.defined())
                    {
                        check_same_type(bias, hidden, func, "bias", "hidden");
                    }
                    if (std::is_same<Teacher, no_teacher>::value || labels.defined())
                    {
                        check_labels(labels, func, "labels");
                    }
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
                        c10::make_intrusive<adapted_linear_loss<Loss, Teacher>>(loss, std::move(teacher));
                    const auto optional = [](const ::torch::Tensor& t)
                    {
                        return t.defined() ? c10::optional<::torch::Tensor>(t) : c10::nullopt;
                    };
                    ::torch::Tensor value = linear_loss_function::apply(
                        h, w, optional(b), optional(prepared_labels(labels)), adapted, keep_grad);
                    return value.scalar_type() == hidden.scalar_type() ? value : value.to(hidden.scalar_type());
                }

                /// The function name of a fused linear divergence, for messages: "xloss::torch::fused_linear_" and
                /// its policy's name.
                template <class Loss>
                struct fused_linear_name;

                template <class Policy, class Options>
                struct fused_linear_name<fused_linear_divergence_loss<Policy, Options>>
                {
                    static const char* get()
                    {
                        static const std::string name = std::string("xloss::torch::fused_linear_") + Policy::name;
                        return name.c_str();
                    }
                };

                /// A fused linear divergence `Loss` of the student's (hidden, weight) against the teacher's.
                template <class Loss>
                ::torch::Tensor fused_linear_divergence(const char* func, const ::torch::Tensor& hidden,
                                                        const ::torch::Tensor& weight,
                                                        const ::torch::Tensor& teacher_hidden,
                                                        const ::torch::Tensor& teacher_weight,
                                                        const ::torch::Tensor& labels,
                                                        const typename Loss::options_type& options,
                                                        const fused_linear_options& linear)
                {
                    check_values(hidden, func, "hidden");
                    return run_linear(Loss(options, linear), func, hidden, weight, ::torch::Tensor(), labels,
                                      prepared_teacher(teacher_hidden, teacher_weight, hidden, func));
                }
            }
        }
    }
}

#endif
