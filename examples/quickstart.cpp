// Quick start: the KL-divergence loss of a small batch and its gradient.
#include <iostream>

#include <xtensor/xio.hpp>

#include <xloss/xloss.hpp>

int main()
{
    // A batch of 2 predicted distributions over 3 classes, as log-probabilities...
    xt::xarray<float> logits = {{2.0f, 1.0f, 0.1f}, {0.5f, 2.5f, 0.3f}};
    // (immediate: xtensor 0.24 miscomputes a lazy keep_dims reducer inside a broadcast)
    xt::xarray<float> input =
        logits - xt::log(xt::sum(xt::exp(logits), {1}, xt::keep_dims | xt::evaluation_strategy::immediate));
    // ... and the target distributions (a zero target contributes exactly 0).
    xt::xarray<float> target = {{0.7f, 0.2f, 0.1f}, {0.0f, 0.9f, 0.1f}};

    xloss::KLDivLoss loss(xloss::reduction::batchmean);
    auto value = loss(input, target);         // 0-d xt::xarray<float>
    auto grad = loss.backward(input, target); // d loss / d input, shape (2, 3)

    std::cout << "KL divergence per sample: " << value() << "\n";
    std::cout << "gradient w.r.t. the input:\n" << grad << "\n";
    return 0;
}
