// Zero-copy interop: xloss reads and writes other containers' memory through
// xt::adapt, with no copy: a std::vector, a raw buffer from a C library and,
// when libtorch is present, a torch::Tensor's data_ptr.

#include <cstdlib>
#include <iostream>
#include <vector>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)

#include <xloss/xloss.hpp>

#ifdef XLOSS_EXAMPLE_WITH_TORCH
#include <torch/torch.h>
#endif

int main()
{
    int failures = 0;
    auto expect = [&](bool ok, const char* what)
    {
        std::cout << (ok ? "ok: " : "FAILED: ") << what << "\n";
        failures += ok ? 0 : 1;
    };

    // 1. std::vector, viewed as a (2, 3) tensor.
    std::vector<float> input = {-1.2f, -0.9f, -1.2f, -0.5f, -2.f, -1.2f};
    std::vector<float> target = {0.3f, 0.4f, 0.3f, 0.6f, 0.1f, 0.3f};
    std::vector<float> grad(6, 0.f);
    const std::vector<std::size_t> shape = {2, 3};
    auto x = xt::adapt(input, shape);
    auto t = xt::adapt(target, shape);
    auto g = xt::adapt(grad, shape);
    float loss = 0.f;
    xloss::kl_div_forward_backward_out(loss, g, x, t, xloss::kl_div_options(xloss::reduction::batchmean));
    // The gradient went straight into the vector's memory: -t / batch.
    expect(g.data() == grad.data() && grad[1] == -0.2f, "gradient written into the std::vector, no copy");
    expect(loss == xloss::kl_div(xt::xarray<float>(x), xt::xarray<float>(t), xloss::reduction::batchmean)(),
           "loss over std::vector equals the loss over an xarray copy");

    // 2. A raw buffer owned by another library (here malloc / free).
    float* buffer = static_cast<float*>(std::malloc(6 * sizeof(float)));
    for (int i = 0; i < 6; ++i)
    {
        buffer[i] = input[i];
    }
    auto raw = xt::adapt(buffer, 6, xt::no_ownership(), shape);
    expect(xloss::kl_div(raw, t, xloss::reduction::batchmean)() == loss, "loss over a raw buffer");
    std::free(buffer);

#ifdef XLOSS_EXAMPLE_WITH_TORCH
    // 3. libtorch tensors: xloss reads the log-probabilities and writes the gradient into a tensor.
    torch::manual_seed(0);
    const torch::Tensor tx = torch::log_softmax(torch::randn({4, 7}), 1);
    const torch::Tensor tt = torch::softmax(torch::randn({4, 7}), 1);
    torch::Tensor tg = torch::empty({4, 7});
    const std::vector<std::size_t> tshape = {4, 7};
    auto ax = xt::adapt(tx.data_ptr<float>(), tx.numel(), xt::no_ownership(), tshape);
    auto at = xt::adapt(tt.data_ptr<float>(), tt.numel(), xt::no_ownership(), tshape);
    auto ag = xt::adapt(tg.data_ptr<float>(), tg.numel(), xt::no_ownership(), tshape);
    float tloss = 0.f;
    xloss::kl_div_forward_backward_out(tloss, ag, ax, at, xloss::kl_div_options(xloss::reduction::batchmean));
    const float torch_loss = torch::kl_div(tx, tt, at::Reduction::Sum).item<float>() / 4.f;
    expect(std::abs(tloss - torch_loss) < 1e-5f * std::abs(torch_loss), "loss over torch tensors equals torch::kl_div");
    expect(torch::allclose(tg, -tt / 4.f), "gradient written into the torch tensor equals -target / batch");
#else
    std::cout << "libtorch not found: its part is left out\n";
#endif
    if (failures)
    {
        return 1;
    }
    std::cout << "interop: every check passed without a copy\n";
}
