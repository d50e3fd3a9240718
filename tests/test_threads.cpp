// Thread safety: many threads calling the same KLDivLoss (and the other entry
// points) on shared const inputs get bit-identical results. CI also runs this
// file under ThreadSanitizer (make tsan).

#include <cmath>
#include <thread>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

TEST_CASE("Threads sharing one KLDivLoss and const inputs get identical results", "[threads]")
{
    xt::xarray<float> x = xt::xarray<float>::from_shape({64, 37});
    xt::xarray<float> t = xt::xarray<float>::from_shape({64, 37});
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        x.flat(i) = -1.f - std::abs(std::sin(0.37f * float(i)));
        t.flat(i) = i % 5 == 0 ? 0.f : std::abs(std::cos(0.11f * float(i)));
    }
    const xt::xarray<float>& cx = x;
    const xt::xarray<float>& ct = t;
    const xloss::KLDivLoss loss(xloss::reduction::batchmean);
    const xloss::KLDivLoss gluon(xloss::kl_div_options::gluon(false));

    struct results
    {
        xt::xarray<float> value, grad, fused_grad, gluon_value, gluon_grad, distill, distill_grad;
    };
    auto compute = [&]
    {
        results r;
        r.value = loss(cx, ct);
        r.grad = loss.backward(cx, ct);
        r.fused_grad = loss.forward_backward(cx, ct).grad_input;
        r.gluon_value = gluon(cx, ct);
        r.gluon_grad = gluon.backward(cx, ct);
        r.distill = xloss::kl_div_with_logits(cx, ct, 2.0);
        r.distill_grad = xloss::kl_div_with_logits_backward(1.f, cx, ct, 2.0);
        return r;
    };
    const results expected = compute();

    constexpr int threads = 8, rounds = 20;
    std::vector<int> mismatches(threads, 0);
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
    {
        pool.emplace_back(
            [&, k]
            {
                for (int round = 0; round < rounds; ++round)
                {
                    const results r = compute();
                    const bool same = xloss_test::identical(r.value, expected.value)
                                      && xloss_test::identical(r.grad, expected.grad)
                                      && xloss_test::identical(r.fused_grad, expected.fused_grad)
                                      && xloss_test::identical(r.gluon_value, expected.gluon_value)
                                      && xloss_test::identical(r.gluon_grad, expected.gluon_grad)
                                      && xloss_test::identical(r.distill, expected.distill)
                                      && xloss_test::identical(r.distill_grad, expected.distill_grad);
                    mismatches[k] += same ? 0 : 1;
                }
            });
    }
    for (auto& th : pool)
    {
        th.join();
    }
    for (int k = 0; k < threads; ++k)
    {
        CHECK(mismatches[k] == 0);
    }
}
