// kl_div and both gradients against golden values computed by PyTorch 1.13
// (tests/golden/generate_kl_div_golden.py, which documents the two places where
// xloss deliberately differs and applies exactly those).

#include "catch_compat.hpp"

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

namespace
{
    template <class T>
    void check_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        const auto x = c.tensors.at("input").as<T>();
        const auto t = c.tensors.at("target").as<T>();
        const auto g = c.tensors.at("grad_output").as<T>();
        const auto r = xloss::parse_reduction(c.reduction);

        INFO("case " << c.name);
        CHECK(xloss_test::compare(xloss::kl_div(x, t, r, c.log_target), c.tensors.at("output").as<T>(), rtol, atol)
              == "");
        CHECK(xloss_test::compare(xloss::kl_div_backward(g, x, t, r, c.log_target), c.tensors.at("grad_input").as<T>(),
                                  rtol, atol)
              == "");
        CHECK(xloss_test::compare(xloss::kl_div_target_backward(g, x, t, r, c.log_target),
                                  c.tensors.at("grad_target").as<T>(), rtol, atol)
              == "");

        // The module gives the same numbers as the functions.
        xloss::KLDivLoss loss(r, c.log_target);
        CHECK(xloss_test::identical(loss(x, t), xloss::kl_div(x, t, r, c.log_target)));
        CHECK(xloss_test::identical(loss.backward(x, t, g), xloss::kl_div_backward(g, x, t, r, c.log_target)));
        CHECK(xloss_test::identical(loss.target_backward(x, t, g),
                                    xloss::kl_div_target_backward(g, x, t, r, c.log_target)));
    }
}

TEST_CASE("kl_div matches PyTorch's golden values", "[golden]")
{
    const auto cases = xloss_test::read_golden(XLOSS_GOLDEN_FILE);
    REQUIRE(cases.size() >= 280);
    std::size_t floats = 0, doubles = 0;
    for (const auto& c : cases)
    {
        if (c.dtype == "float")
        {
            ++floats;
            check_case<float>(c, 2e-5, 2e-6);
        }
        else
        {
            ++doubles;
            check_case<double>(c, 1e-11, 1e-13);
        }
    }
    CHECK(floats > 100);
    CHECK(doubles > 100);
}

TEST_CASE("OneFlow's documented example, read from its documentation", "[golden]")
{
    // OneFlow zeroes negative targets; PyTorch 1.13 and xloss give NaN there,
    // so only its two positive-target terms are compared here.
    xt::xarray<float> x = {-0.9021705f, 0.08798598f, 1.04686249f};
    xt::xarray<float> t = {1.22386942f, -0.89729659f, 0.01615712f};
    const auto none = xloss::kl_div(x, t, xloss::reduction::none);
    CHECK(none(0) == Approx(1.3514).epsilon(1e-4));
    CHECK(xloss_test::is_nan(none(1)));
    CHECK(none(2) == Approx(-0.0836).epsilon(1e-3));
    // log_target sums to OneFlow's 5.7801: with exp(t) there is no negative-target issue.
    CHECK(xloss::kl_div(x, t, xloss::reduction::sum, true)() == Approx(5.7801).epsilon(1e-4));
}
