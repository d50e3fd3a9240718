/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_TORCH_TENSORS_HPP
#define XLOSS_DETAIL_TORCH_TENSORS_HPP

// libtorch tensors as xtensor expressions and back: the argument checks, the views (no copy) and
// xloss's results handed to libtorch (no copy either).

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../../float16.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            namespace torch_bridge
            {
                [[noreturn]] inline void fail(const char* func, const char* arg, const std::string& what)
                {
                    throw std::invalid_argument(std::string(func) + ": " + arg + " " + what);
                }

                /// Backward under create_graph would return gradients without a graph: an error instead.
                inline void check_first_order(const char* what)
                {
                    if (::torch::autograd::GradMode::is_enabled())
                    {
                        throw std::runtime_error(std::string("xloss::torch: ") + what
                                                 + " has no double backward (backward with create_graph)");
                    }
                }

                /// A gradient the forward kept in the graph (saved_data[name]), taken out so that autograd
                /// can keep it as the input's .grad without a copy; `what` names the loss for the error a
                /// second backward (retain_graph) gets.
                inline ::torch::Tensor take_kept(::torch::autograd::AutogradContext* ctx, const char* name,
                                                 const char* what)
                {
                    auto it = ctx->saved_data.find(name);
                    if (it == ctx->saved_data.end())
                    {
                        throw std::runtime_error(std::string("xloss::torch: ") + what
                                                 + " keeps its gradients for one backward pass; a second backward "
                                                   "through it (retain_graph) is not supported");
                    }
                    ::torch::Tensor grad = it->second.toTensor();
                    ctx->saved_data.erase(it);
                    return grad;
                }

                inline void check_cpu(const ::torch::Tensor& t, const char* func, const char* arg)
                {
                    if (!t.defined())
                    {
                        fail(func, arg, "is an undefined tensor");
                    }
                    if (!t.device().is_cpu())
                    {
                        fail(func, arg, "is on " + t.device().str() + "; xloss computes on the CPU (.cpu() first)");
                    }
                }

                /// A floating-point argument: float, double, bfloat16 or half, on the CPU.
                inline void check_values(const ::torch::Tensor& t, const char* func, const char* arg)
                {
                    check_cpu(t, func, arg);
                    switch (t.scalar_type())
                    {
                        case ::torch::kFloat:
                        case ::torch::kDouble:
                        case ::torch::kBFloat16:
                        case ::torch::kHalf:
                            return;
                        default:
                            fail(func, arg,
                                 std::string("has dtype ") + c10::toString(t.scalar_type())
                                     + "; xloss takes float, double, bfloat16 or half");
                    }
                }

                /// A second floating-point argument, of the first one's dtype (as libtorch's losses ask).
                inline void check_same_type(const ::torch::Tensor& t, const ::torch::Tensor& first, const char* func,
                                            const char* arg, const char* first_arg)
                {
                    check_values(t, func, arg);
                    if (t.scalar_type() != first.scalar_type())
                    {
                        fail(func, arg,
                             std::string("has dtype ") + c10::toString(t.scalar_type()) + " and " + first_arg + " "
                                 + c10::toString(first.scalar_type()) + "; give both the same dtype");
                    }
                }

                /// Class labels: an integer tensor on the CPU.
                inline void check_labels(const ::torch::Tensor& t, const char* func, const char* arg)
                {
                    check_cpu(t, func, arg);
                    if (!c10::isIntegralType(t.scalar_type(), /*includeBool=*/false))
                    {
                        fail(func, arg,
                             std::string("has dtype ") + c10::toString(t.scalar_type()) + "; labels are integers");
                    }
                }

                /// The dtypes a loss's kernels read: float and double, or the 16-bit ones too (the row
                /// losses, which convert them row by row).
                enum class dtypes
                {
                    float_double,
                    with_16_bit
                };

                inline bool is_16_bit(::torch::ScalarType type) noexcept
                {
                    return type == ::torch::kBFloat16 || type == ::torch::kHalf;
                }

                /// The dtype xloss reads the tensor in: its own where the kernels read it, else double for
                /// double tensors and float for the others.
                inline ::torch::ScalarType compute_type(const ::torch::Tensor& t, dtypes read = dtypes::float_double)
                {
                    if (read == dtypes::with_16_bit && is_16_bit(t.scalar_type()))
                    {
                        return t.scalar_type();
                    }
                    return t.scalar_type() == ::torch::kDouble ? ::torch::kDouble : ::torch::kFloat;
                }

                /// The tensor in the compute type, contiguous: itself when it is so already. Conversions
                /// and copies are libtorch operations, so that autograd takes the gradient back through them.
                inline ::torch::Tensor prepared(const ::torch::Tensor& t, ::torch::ScalarType type)
                {
                    return t.defined() ? t.to(type).contiguous() : t;
                }

                /// Labels as int32 or int64 (the two xloss reads without a copy), contiguous.
                inline ::torch::Tensor prepared_labels(const ::torch::Tensor& t)
                {
                    if (!t.defined())
                    {
                        return t;
                    }
                    const bool direct = t.scalar_type() == ::torch::kInt || t.scalar_type() == ::torch::kLong;
                    return (direct ? t : t.to(::torch::kLong)).contiguous();
                }

                /// The dtype of elements of type V (xloss's 16-bit types have c10's layouts).
                template <class V>
                constexpr ::torch::ScalarType scalar_type_of() noexcept
                {
                    if constexpr (std::is_same<V, xloss::bfloat16>::value)
                    {
                        return ::torch::kBFloat16;
                    }
                    else if constexpr (std::is_same<V, xloss::half>::value)
                    {
                        return ::torch::kHalf;
                    }
                    else
                    {
                        return c10::CppTypeToScalarType<V>::value;
                    }
                }

                /// A contiguous CPU tensor's elements as V (checked against its dtype).
                template <class V>
                V* data_of(const ::torch::Tensor& t)
                {
                    if (t.scalar_type() != scalar_type_of<V>())
                    {
                        throw std::logic_error("xloss::torch: a tensor read in another dtype than its own");
                    }
                    return static_cast<V*>(t.data_ptr());
                }

                /// An xtensor view of a contiguous CPU tensor of element type V.
                template <class V>
                auto view(const ::torch::Tensor& t)
                {
                    std::vector<std::size_t> shape(t.sizes().begin(), t.sizes().end());
                    return xt::adapt(data_of<V>(t), static_cast<std::size_t>(t.numel()), xt::no_ownership(),
                                     std::move(shape));
                }

                /// f(value) with a value of the prepared tensor's type: float or double, or bfloat16 and half
                /// where the loss reads them (Read).
                template <dtypes Read, class F>
                ::torch::Tensor with_value_type(const ::torch::Tensor& t, F&& f)
                {
                    if constexpr (Read == dtypes::with_16_bit)
                    {
                        if (t.scalar_type() == ::torch::kBFloat16)
                        {
                            return f(xloss::bfloat16{});
                        }
                        if (t.scalar_type() == ::torch::kHalf)
                        {
                            return f(xloss::half{});
                        }
                    }
                    return t.scalar_type() == ::torch::kDouble ? f(double{}) : f(float{});
                }

                /// f(view) with a view of int32 or int64 labels.
                template <class F>
                auto with_labels(const ::torch::Tensor& labels, F&& f)
                {
                    return labels.scalar_type() == ::torch::kInt ? f(view<std::int32_t>(labels))
                                                                 : f(view<std::int64_t>(labels));
                }

                /// An xloss result as a tensor that owns it: no copy.
                template <class V>
                ::torch::Tensor to_tensor(xt::xarray<V>&& a)
                {
                    auto owner = std::make_unique<xt::xarray<V>>(std::move(a));
                    const std::vector<std::int64_t> sizes(owner->shape().begin(), owner->shape().end());
                    // The deleter owns it from here (should from_blob fail after taking it, a leak, not
                    // a double free).
                    xt::xarray<V>* held = owner.release();
                    return ::torch::from_blob(
                        held->data(), sizes,
                        [held](void*)
                        {
                            delete held;
                        },
                        ::torch::TensorOptions().dtype(scalar_type_of<V>()));
                }
            }
        }
    }
}

#endif
