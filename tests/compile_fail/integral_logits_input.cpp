// Must not compile: the divergence modules take float or double logits only.
#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<int> s = {{1, 2}};
    xt::xarray<int> t = {{2, 1}};
    return static_cast<int>(xloss::GeneralizedJSDLoss().forward_backward(s, t).loss());
}
