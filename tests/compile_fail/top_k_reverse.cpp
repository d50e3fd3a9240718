// Must not compile: a top-k teacher has no reverse KL (it lacks p where the student has mass).
#include <xloss/xloss.hpp>

int main()
{
    xt::xarray<float> s = {{0.f, 1.f, 2.f}};
    xt::xarray<int> ids = {{0, 2}};
    xt::xarray<float> lp = {{-0.5f, -1.f}};
    return static_cast<int>(xloss::ReverseKLLoss()(s, xloss::top_k(ids, lp))());
}
