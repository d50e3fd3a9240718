#include <cmath>
#include <cstdio>

#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<double> x = xt::log(xt::xarray<double>{0.25, 0.75});
    xt::xarray<double> t = {0.5, 0.5};
    const double loss = xloss::kl_div(x, t, xloss::reduction::sum)();
    const double expected = 0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75);
    std::printf("loss %.17g expected %.17g\n", loss, expected);
    return std::abs(loss - expected) < 1e-15 ? 0 : 1;
}
