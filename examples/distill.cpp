// Knowledge distillation: a teacher's logits distilled into a student with the
// fused kl_div_with_logits (no softmax is ever stored), at temperature 2.

#include <cstddef>
#include <iostream>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)
#include XLOSS_XTENSOR_HEADER(misc, xsort.hpp)

#include <xloss/xloss.hpp>

namespace
{
    xt::xarray<float> matmul(const xt::xarray<float>& a, const xt::xarray<float>& b)
    {
        const std::size_t n = a.shape(0), k = a.shape(1), m = b.shape(1);
        xt::xarray<float> c = xt::zeros<float>({n, m});
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < k; ++j)
                for (std::size_t l = 0; l < m; ++l)
                    c(i, l) += a(i, j) * b(j, l);
        return c;
    }

    /// The share of samples on which student and teacher pick the same class.
    double agreement(const xt::xarray<float>& student, const xt::xarray<float>& teacher)
    {
        const auto a = xt::argmax(student, 1);
        const auto b = xt::argmax(teacher, 1);
        return xt::mean(xt::cast<double>(xt::equal(a, b)))();
    }
}

int main()
{
    constexpr std::size_t samples = 512, features = 16, classes = 10;
    constexpr double temperature = 2.0;
    xt::random::seed(11);
    const xt::xarray<float> x = xt::random::randn<float>({samples, features});
    // The teacher: a fixed linear model; its logits are all the student sees.
    const xt::xarray<float> teacher_logits = matmul(x, 3.f * xt::random::randn<float>({features, classes}));

    xt::xarray<float> w = 0.01f * xt::random::randn<float>({features, classes});
    const xt::xarray<float> xt_ = xt::transpose(x);
    const double before = agreement(matmul(x, w), teacher_logits);
    for (int step = 0; step < 300; ++step)
    {
        // T^2 KL(softmax(teacher / T) || softmax(student / T)) per sample, and its gradient
        // w.r.t. the student's logits, in one set of passes.
        const auto [loss, grad, unused] =
            xloss::kl_div_with_logits_forward_backward(matmul(x, w), teacher_logits, temperature);
        w -= 0.5f * matmul(xt_, grad);
        if (step % 100 == 0)
        {
            std::cout << "step " << step << ": distillation loss " << loss() << "\n";
        }
    }
    const double after = agreement(matmul(x, w), teacher_logits);
    std::cout << "agreement with the teacher: " << before << " before, " << after << " after\n";
    if (!(after > before && after > 0.9))
    {
        std::cout << "the student did not learn\n";
        return 1;
    }
    std::cout << "the student agrees with the teacher\n";
}
