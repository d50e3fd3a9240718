// The fused linear cross-entropy through the package's xloss::linear: the loss of h W^T.
#include <cmath>
#include <cstdio>

#include <xloss/fused_linear.hpp>
#include <xloss/xloss.hpp>

int main()
{
    const xt::xarray<double> h = {{1.0, -0.5}, {0.25, 2.0}};
    const xt::xarray<double> w = {{0.5, 0.0}, {-1.0, 1.0}, {0.0, 0.75}};
    const xt::xarray<int> labels = {2, 0};
    const xt::xarray<double> logits = {{0.5, -1.5, -0.375}, {0.125, 1.75, 1.5}};
    const double loss = xloss::fused_linear_cross_entropy(h, xloss::linear(w), labels)();
    const double expected = xloss::cross_entropy(logits, labels)();
    std::printf("fused linear loss %.17g expected %.17g\n", loss, expected);
    return std::abs(loss - expected) < 1e-14 ? 0 : 1;
}
