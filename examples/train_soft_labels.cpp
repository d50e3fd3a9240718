// A training loop in plain C++ with xtensor: softmax regression trained by SGD
// against soft labels. KLDivLoss takes the logits itself (input_logits), so its
// backward is the gradient w.r.t. the logits, ready for the weights' update.

#include <cstddef>
#include <iostream>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)

#include <xloss/xloss.hpp>

namespace
{
    // c = a (n x k) times b (k x m)
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
}

int main()
{
    constexpr std::size_t samples = 256, features = 8, classes = 5;
    xt::random::seed(7);
    // Soft labels from a hidden linear model: softmax(x w_true).
    const xt::xarray<float> x = xt::random::randn<float>({samples, features});
    const xt::xarray<float> w_true = xt::random::randn<float>({features, classes});
    const xt::xarray<float> z_true = matmul(x, w_true);
    const xt::xarray<float> sums = xt::sum(xt::exp(z_true), {1}, xt::keep_dims); // stored before it broadcasts
    const xt::xarray<float> labels = xt::exp(z_true) / sums;

    // The model: logits = x w. The loss: KL(labels || softmax(logits)) per sample.
    xt::xarray<float> w = xt::zeros<float>({features, classes});
    const xloss::KLDivLoss loss(xloss::kl_div_options(xloss::reduction::batchmean).input_logits(true));
    const xt::xarray<float> xt_ = xt::transpose(x);

    float first = 0.f, last = 0.f;
    for (int step = 0; step < 200; ++step)
    {
        const xt::xarray<float> logits = matmul(x, w);
        auto [value, grad_logits, unused] = loss.forward_backward(logits, labels);
        w -= 0.5f * matmul(xt_, grad_logits); // d loss / d w = x^T (d loss / d logits)
        if (step == 0)
        {
            first = value();
        }
        last = value();
        if (step % 50 == 0)
        {
            std::cout << "step " << step << ": KL " << value() << "\n";
        }
    }
    std::cout << "KL from " << first << " to " << last << "\n";
    if (!(last < 0.1f * first))
    {
        std::cout << "the loss did not fall\n";
        return 1;
    }
    std::cout << "the loss fell\n";
}
