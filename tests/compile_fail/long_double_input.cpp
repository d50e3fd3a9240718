// Must not compile: the divergences take float or double logits only (long double too is refused).
#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<long double> s = {{1.0L, 2.0L}};
    xt::xarray<long double> t = {{0.5L, 0.0L}};
    return static_cast<int>(xloss::forward_kl(s, t)());
}
