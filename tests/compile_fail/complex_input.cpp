// Must not compile: kl_div takes float or double elements only.
#include <complex>

#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<std::complex<double>> x = {std::complex<double>(1.0, 0.0)};
    xt::xarray<double> t = {0.5};
    return static_cast<int>(xloss::kl_div(x, t)());
}
