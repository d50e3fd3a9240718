// Reductions by name, and the options shared by functions and module.

#include "catch_compat.hpp"

#include <xloss/xloss.hpp>

TEST_CASE("parse_reduction accepts the four names and round-trips", "[reduction]")
{
    using xloss::reduction;
    CHECK(xloss::parse_reduction("none") == reduction::none);
    CHECK(xloss::parse_reduction("mean") == reduction::mean);
    CHECK(xloss::parse_reduction("sum") == reduction::sum);
    CHECK(xloss::parse_reduction("batchmean") == reduction::batchmean);
    for (auto r : {reduction::none, reduction::mean, reduction::sum, reduction::batchmean})
    {
        CHECK(xloss::parse_reduction(xloss::to_string(r)) == r);
    }
}

TEST_CASE("parse_reduction rejects other names, listing the valid ones", "[reduction][errors]")
{
    CHECK_THROWS_WITH(xloss::parse_reduction("Sum"),
                      "xloss: unknown reduction 'Sum'; valid reductions are 'none', 'mean', 'sum' and 'batchmean'");
    CHECK_THROWS_AS(xloss::parse_reduction(""), std::invalid_argument);
    CHECK_THROWS_AS(xloss::parse_reduction("elementwise_mean"), std::invalid_argument);
    CHECK_THROWS_WITH(xloss::KLDivLoss("avg"), xloss_test::contains("unknown reduction 'avg'"));
    CHECK_THROWS_WITH(xloss::kl_div_options("batch_mean"), xloss_test::contains("'batchmean'"));
}

TEST_CASE("kl_div_options chain like libtorch's", "[reduction]")
{
    constexpr auto defaults = xloss::kl_div_options();
    STATIC_REQUIRE(defaults.reduction() == xloss::reduction::mean);
    STATIC_REQUIRE(!defaults.log_target());
    // Setters check their values and stay constant expressions for valid ones.
    constexpr auto chained = xloss::kl_div_options().reduction(xloss::reduction::sum).divisor(4.).num_threads(2);
    STATIC_REQUIRE(chained.reduction() == xloss::reduction::sum);
    STATIC_REQUIRE(chained.divisor() == 4.);
    constexpr auto jsd = xloss::jsd_options().beta(0.25).temperature(2.).input(xloss::row_input::logits);
    STATIC_REQUIRE(jsd.beta() == 0.25);
    STATIC_REQUIRE(jsd.temperature() == 2.);
    const auto opts = xloss::kl_div_options().reduction(xloss::reduction::batchmean).log_target(true);
    CHECK(opts.reduction() == xloss::reduction::batchmean);
    CHECK(opts.log_target());
    const xloss::kl_div_options named("sum", true);
    CHECK(named.reduction() == xloss::reduction::sum);
    CHECK(named.log_target());
}
