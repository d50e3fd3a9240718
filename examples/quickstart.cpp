#include <iostream>

#include <xloss/xloss.hpp>
// xtensor's printing; XLOSS_XTENSOR_HEADER finds it under xtensor 0.24 to 0.27 alike.
#include XLOSS_XTENSOR_HEADER(io, xio.hpp)

int main()
{
    // log-probabilities of 2 samples over 3 classes, and the target distributions
    xt::xarray<float> input = xt::log(xt::xarray<float>{{0.6f, 0.3f, 0.1f}, {0.2f, 0.7f, 0.1f}});
    xt::xarray<float> target = {{0.7f, 0.2f, 0.1f}, {0.0f, 0.9f, 0.1f}};

    xloss::KLDivLoss loss(xloss::reduction::batchmean);
    auto value = loss(input, target);         // 0-d xt::xarray<float>
    auto grad = loss.backward(input, target); // d loss / d input, shape (2, 3)

    std::cout << "KL divergence per sample: " << value() << "\n" << grad << "\n";
}
