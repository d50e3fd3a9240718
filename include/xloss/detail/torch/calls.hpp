/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_TORCH_CALLS_HPP
#define XLOSS_DETAIL_TORCH_CALLS_HPP

// How each family of losses is called on the views of the autograd function's arguments
// (adapted_loss's Call): the pointwise losses on (input, target), the cross-entropy on (logits,
// labels), the divergences on (student, teacher[, labels]).

#include "../../divergence_loss.hpp"
#include "../../forward_kl.hpp"
#include "function.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            namespace torch_bridge
            {
                struct pointwise_call
                {
                    static constexpr dtypes read = dtypes::float_double;

                    template <class V, class Loss>
                    static auto loss(const Loss& l, const loss_args& a)
                    {
                        return l(view<V>(a.input), view<V>(a.target));
                    }

                    template <class V, class Loss>
                    static auto forward_backward(const Loss& l, const loss_args& a)
                    {
                        return l.forward_backward(view<V>(a.input), view<V>(a.target));
                    }

                    template <class R>
                    static auto& grad(R& r)
                    {
                        return r.grad_input;
                    }

                    template <class V, class Loss, class G>
                    static auto backward(const Loss& l, const loss_args& a, const G& grad_output)
                    {
                        return l.backward(view<V>(a.input), view<V>(a.target), grad_output);
                    }
                };

                /// The cross-entropy against class labels, or (labels undefined) probability targets.
                struct cross_entropy_call
                {
                    static constexpr dtypes read = dtypes::with_16_bit;

                    /// f(labels view), or f(targets view) with probability targets.
                    template <class V, class F>
                    static auto with_targets(const loss_args& a, F&& f)
                    {
                        if (a.labels.defined())
                        {
                            return with_labels(a.labels, f);
                        }
                        return f(view<V>(a.target));
                    }

                    template <class V, class Loss>
                    static auto loss(const Loss& l, const loss_args& a)
                    {
                        return with_targets<V>(a,
                                               [&](const auto& y)
                                               {
                                                   return xt::xarray<V>(l(view<V>(a.input), y));
                                               });
                    }

                    template <class V, class Loss>
                    static auto forward_backward(const Loss& l, const loss_args& a)
                    {
                        return with_targets<V>(a,
                                               [&](const auto& y)
                                               {
                                                   return l.forward_backward(view<V>(a.input), y);
                                               });
                    }

                    template <class R>
                    static auto& grad(R& r)
                    {
                        return r.grad_logits;
                    }

                    template <class V, class Loss, class G>
                    static auto backward(const Loss& l, const loss_args& a, const G& grad_output)
                    {
                        return with_targets<V>(a,
                                               [&](const auto& y)
                                               {
                                                   return xt::xarray<V>(l.backward(view<V>(a.input), y, grad_output));
                                               });
                    }
                };

                struct divergence_call
                {
                    static constexpr dtypes read = dtypes::with_16_bit;

                    /// f(labels): all_rows without labels.
                    template <class F>
                    static auto with_any_labels(const ::torch::Tensor& labels, F&& f)
                    {
                        return labels.defined() ? with_labels(labels, f) : f(all_rows);
                    }

                    template <class V, class Loss>
                    static auto loss(const Loss& l, const loss_args& a)
                    {
                        return with_any_labels(a.labels,
                                               [&](const auto& y)
                                               {
                                                   return xt::xarray<V>(l(view<V>(a.input), view<V>(a.target), y));
                                               });
                    }

                    template <class V, class Loss>
                    static auto forward_backward(const Loss& l, const loss_args& a)
                    {
                        return with_any_labels(a.labels,
                                               [&](const auto& y)
                                               {
                                                   return l.forward_backward(view<V>(a.input), view<V>(a.target), y);
                                               });
                    }

                    template <class R>
                    static auto& grad(R& r)
                    {
                        return r.grad_student;
                    }

                    template <class V, class Loss, class G>
                    static auto backward(const Loss& l, const loss_args& a, const G& grad_output)
                    {
                        return with_any_labels(a.labels,
                                               [&](const auto& y)
                                               {
                                                   return xt::xarray<V>(
                                                       l.backward(view<V>(a.input), view<V>(a.target), y, grad_output));
                                               });
                    }
                };

                /// The forward KL from a top-k teacher: its ids (int64, contiguous; they need no gradient)
                /// held beside the loss, its log-probabilities the target.
                struct top_k_loss
                {
                    xloss::ForwardKLLoss loss;
                    ::torch::Tensor ids;

                    const distill_options& options() const noexcept
                    {
                        return loss.options();
                    }
                };

                struct top_k_call
                {
                    static constexpr dtypes read = dtypes::float_double;

                    /// f(the student's view, the top-k teacher) with the labels' view, or all_rows.
                    template <class V, class F>
                    static auto with_teacher(const top_k_loss& l, const loss_args& a, F&& f)
                    {
                        const auto ids = view<std::int64_t>(l.ids);
                        const auto log_probs = view<V>(a.target);
                        return divergence_call::with_any_labels(a.labels,
                                                                [&](const auto& y)
                                                                {
                                                                    return f(view<V>(a.input),
                                                                             xloss::top_k(ids, log_probs), y);
                                                                });
                    }

                    template <class V>
                    static auto loss(const top_k_loss& l, const loss_args& a)
                    {
                        return with_teacher<V>(l, a,
                                               [&](const auto& s, const auto& t, const auto& y)
                                               {
                                                   return xt::xarray<V>(l.loss(s, t, y));
                                               });
                    }

                    template <class V>
                    static auto forward_backward(const top_k_loss& l, const loss_args& a)
                    {
                        return with_teacher<V>(l, a,
                                               [&](const auto& s, const auto& t, const auto& y)
                                               {
                                                   return l.loss.forward_backward(s, t, y);
                                               });
                    }

                    template <class R>
                    static auto& grad(R& r)
                    {
                        return r.grad_student;
                    }

                    template <class V, class G>
                    static auto backward(const top_k_loss& l, const loss_args& a, const G& grad_output)
                    {
                        return with_teacher<V>(l, a,
                                               [&](const auto& s, const auto& t, const auto& y)
                                               {
                                                   return xt::xarray<V>(l.loss.backward(s, t, y, grad_output));
                                               });
                    }
                };

                /// The row policy of a divergence_loss.
                template <class Loss>
                struct policy_of;

                template <class Policy, class Options>
                struct policy_of<divergence_loss<Policy, Options>>
                {
                    using type = Policy;
                };

                /// A divergence of the caller's tensors (`labels` undefined: all rows).
                template <class Loss>
                ::torch::Tensor divergence(const char* func, const ::torch::Tensor& student,
                                           const ::torch::Tensor& teacher, const ::torch::Tensor& labels,
                                           const typename Loss::options_type& options)
                {
                    return run<divergence_call>(Loss(options), func, {student, "student_logits"},
                                                {teacher, "teacher_logits"}, {labels, "labels", false});
                }
            }
        }
    }
}

#endif
