/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_TORCH_MODULES_HPP
#define XLOSS_TORCH_MODULES_HPP

/// @file
/// xloss's losses as torch::nn modules: `xloss::torch::KLDivLoss loss(options); loss(input, target)`,
/// each holding its options as libtorch's loss modules do.

#include <ostream>
#include <string>

#include "functional.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace torch
        {
            /// @brief The module implementation all the losses share: the options, nothing to reset.
            template <class Options, class Derived>
            class loss_module_impl : public ::torch::nn::Cloneable<Derived>
            {
            public:

                /// A loss with the given options.
                explicit loss_module_impl(const Options& options_ = Options())
                    : options(options_)
                {
                }

                /// Nothing to reset: a loss has no parameters or buffers.
                void reset() override
                {
                }

                Options options; ///< as libtorch's modules hold theirs
            };

            /// @brief A module holder (libtorch's TORCH_MODULE, which cannot be used in a namespace named torch).
            template <class ImplType>
            class loss_module : public ::torch::nn::ModuleHolder<ImplType>
            {
            public:

                using ::torch::nn::ModuleHolder<ImplType>::ModuleHolder;
                using Impl = ImplType; ///< the module's implementation class
            };

            /// @brief kl_div as a module: forward(input, target).
            class KLDivLossImpl : public loss_module_impl<kl_div_options, KLDivLossImpl>
            {
            public:

                using loss_module_impl::loss_module_impl; ///< the options' constructor

                /// xloss::torch::kl_div with the module's options.
                ::torch::Tensor forward(const ::torch::Tensor& input, const ::torch::Tensor& target)
                {
                    return kl_div(input, target, options);
                }

                /// The module's name, as libtorch prints modules.
                void pretty_print(std::ostream& stream) const override
                {
                    stream << "xloss::torch::KLDivLoss";
                }
            };

            /// @brief cross_entropy as a module: forward(logits, labels).
            class CrossEntropyLossImpl : public loss_module_impl<cross_entropy_options, CrossEntropyLossImpl>
            {
            public:

                using loss_module_impl::loss_module_impl; ///< the options' constructor

                /// xloss::torch::cross_entropy with the module's options.
                ::torch::Tensor forward(const ::torch::Tensor& logits, const ::torch::Tensor& labels)
                {
                    return cross_entropy(logits, labels, options);
                }

                /// The module's name, as libtorch prints modules.
                void pretty_print(std::ostream& stream) const override
                {
                    stream << "xloss::torch::CrossEntropyLoss";
                }
            };

            /// @brief A divergence as a module: forward(student_logits, teacher_logits[, labels]).
            template <class Loss>
            class DivergenceLossImpl
                : public loss_module_impl<typename Loss::options_type, DivergenceLossImpl<Loss>>
            {
            public:

                /// The options' constructor.
                using loss_module_impl<typename Loss::options_type, DivergenceLossImpl<Loss>>::loss_module_impl;

                /// The divergence with the module's options (`labels` undefined: every row).
                ::torch::Tensor forward(const ::torch::Tensor& student_logits, const ::torch::Tensor& teacher_logits,
                                        const ::torch::Tensor& labels = ::torch::Tensor())
                {
                    const std::string func = std::string("xloss::torch::") + name();
                    return xloss::detail::torch_bridge::divergence<Loss>(func.c_str(), student_logits, teacher_logits,
                                                                         labels, this->options);
                }

                /// The module's name, as libtorch prints modules.
                void pretty_print(std::ostream& stream) const override
                {
                    stream << "xloss::torch::DivergenceLoss(" << name() << ")";
                }

            private:

                static const char* name() noexcept
                {
                    return xloss::detail::torch_bridge::policy_of<Loss>::type::name;
                }
            };

            using KLDivLoss = loss_module<KLDivLossImpl>;                 ///< torch::nn::KLDivLoss's counterpart
            using CrossEntropyLoss = loss_module<CrossEntropyLossImpl>;   ///< torch::nn::CrossEntropyLoss's counterpart
            using ForwardKLLoss = loss_module<DivergenceLossImpl<xloss::ForwardKLLoss>>;           ///< forward_kl
            using ReverseKLLoss = loss_module<DivergenceLossImpl<xloss::ReverseKLLoss>>;           ///< reverse_kl
            using GeneralizedJSDLoss = loss_module<DivergenceLossImpl<xloss::GeneralizedJSDLoss>>; ///< generalized_jsd
            using SymmetricKLLoss = loss_module<DivergenceLossImpl<xloss::SymmetricKLLoss>>;       ///< symmetric_kl
        }
    }
}

#endif
