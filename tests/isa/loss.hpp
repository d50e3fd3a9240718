// One function, compiled twice: for baseline x86-64 (baseline.cpp) and for AVX-512 (wide.cpp). Both
// instantiate the same xloss templates; the program must run each translation unit's own copy.
#ifndef XLOSS_TEST_ISA_LOSS_HPP
#define XLOSS_TEST_ISA_LOSS_HPP

#include <xloss/xloss.hpp>

#define XLOSS_TEST_ISA_LOSS_BODY                                                                                       \
    {                                                                                                                  \
        xt::xarray<float> x = xt::xarray<float>::from_shape({3, 40});                                                  \
        xt::xarray<float> t = xt::xarray<float>::from_shape({3, 40});                                                  \
        for (std::size_t i = 0; i < x.size(); ++i)                                                                     \
        {                                                                                                              \
            t.data()[i] = 0.5f + 0.01f * static_cast<float>(i % 17);                                                   \
            x.data()[i] = -1.f - 0.02f * static_cast<float>(i % 23);                                                   \
        }                                                                                                              \
        const auto options = xloss::kl_div_options(xloss::reduction::batchmean);                                       \
        const auto r = xloss::kl_div_forward_backward(x, t, options);                                                  \
        return static_cast<double>(xloss::kl_div(x, t, options)()) + static_cast<double>(r.grad_input(0, 0))           \
               + static_cast<double>(xloss::kl_div_with_logits(x, t, 2.0)())                                           \
               + static_cast<double>(xloss::GeneralizedJSDLoss(xloss::jsd_options().temperature(2.0))                  \
                                         .forward_backward(x, t, xt::xarray<int>{1, -100, 2})                          \
                                         .grad_student(0, 0));                                                         \
    }

double baseline_loss();
double wide_loss();

#endif
