// Must not compile: kl_div takes float or double elements only.
#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<int> x = {1, 2};
    xt::xarray<int> t = {1, 0};
    return static_cast<int>(xloss::kl_div(x, t)());
}
