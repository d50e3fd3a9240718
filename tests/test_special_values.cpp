// The special-value table (docs/special_values.md): every combination of special
// inputs and targets, both target spaces, float and double, against the values
// tests/golden/generate_special_values.py derived from xloss's semantics (and
// shows beside PyTorch's). All combinations of a table go through one call, so
// that full SIMD batches, not only the tail, see them.

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

namespace
{
    struct special_row
    {
        std::string x_name, t_name;
        double x, t;
        double expected[3]; // term, grad_input, grad_target
    };

    double parse(const std::string& s)
    {
        if (s == "nan")
        {
            return std::numeric_limits<double>::quiet_NaN();
        }
        if (s == "inf" || s == "-inf")
        {
            return s[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
        }
        return std::strtod(s.c_str(), nullptr);
    }

    std::vector<special_row> read_table(const std::string& dtype, bool log_target)
    {
        std::ifstream in(XLOSS_SPECIAL_VALUES_FILE);
        REQUIRE(in);
        std::vector<special_row> rows;
        std::string line;
        while (std::getline(in, line))
        {
            if (line.empty() || line[0] == '#')
            {
                continue;
            }
            std::istringstream is(line);
            std::string d, lt, bar, x, t;
            special_row r;
            is >> d >> lt >> r.x_name >> r.t_name >> x >> t >> bar;
            if (d != dtype || (lt == "1") != log_target)
            {
                continue;
            }
            r.x = parse(x);
            r.t = parse(t);
            for (double& e : r.expected)
            {
                std::string v;
                is >> v;
                e = parse(v);
            }
            rows.push_back(r);
        }
        return rows;
    }

    template <class T>
    bool matches(T got, double expected)
    {
        if (xloss_test::is_nan(expected) || xloss_test::is_nan(got))
        {
            return xloss_test::is_nan(expected) && xloss_test::is_nan(got);
        }
        if (xloss_test::is_inf(expected) || xloss_test::is_inf(got))
        {
            return static_cast<double>(got) == expected;
        }
        const double eps = std::numeric_limits<T>::epsilon();
        return std::abs(static_cast<double>(got) - expected)
               <= 4 * eps * std::abs(expected) + std::numeric_limits<T>::min();
    }

    template <class T>
    void check_table(const std::string& dtype, bool log_target)
    {
        const auto rows = read_table(dtype, log_target);
        REQUIRE(rows.size() == 99);
        xt::xarray<T> x = xt::xarray<T>::from_shape({rows.size()});
        xt::xarray<T> t = xt::xarray<T>::from_shape({rows.size()});
        for (std::size_t i = 0; i < rows.size(); ++i)
        {
            x(i) = static_cast<T>(rows[i].x);
            t(i) = static_cast<T>(rows[i].t);
        }
        // Under flush-to-zero (a program linked with -ffast-math runs so), the arithmetic reads a
        // subnormal as 0: a row with a subnormal argument then gives the row with 0 in its place.
        const bool ftz = xloss_test::flushes_subnormals();
        auto expected = [&](std::size_t i) -> const double*
        {
            const auto as_read = [&](const std::string& name)
            {
                return ftz && name == "subnormal" ? "0" : name;
            };
            for (const auto& r : rows)
            {
                if (r.x_name == as_read(rows[i].x_name) && r.t_name == as_read(rows[i].t_name))
                {
                    return r.expected;
                }
            }
            FAIL("no row for " << rows[i].x_name << ", " << rows[i].t_name);
            return nullptr;
        };
        const auto opts = xloss::kl_div_options(xloss::reduction::none, log_target);
        const xt::xarray<T> got[3] = {xloss::kl_div(x, t, opts), xloss::kl_div_backward(T(1), x, t, opts),
                                      xloss::kl_div_target_backward(T(1), x, t, opts)};
        const char* what[3] = {"term", "grad_input", "grad_target"};
        for (std::size_t i = 0; i < rows.size(); ++i)
        {
            for (int k = 0; k < 3; ++k)
            {
                INFO(dtype << (log_target ? " log_target" : "") << " x = " << rows[i].x_name
                           << ", t = " << rows[i].t_name << ": " << what[k] << " " << got[k](i) << ", table "
                           << expected(i)[k] << (ftz ? " (flush-to-zero)" : ""));
                CHECK(matches(got[k](i), expected(i)[k]));
            }
        }
        // The fused pass writes the same gradients.
        auto fb = xloss::kl_div_forward_backward(x, t, opts, true);
        for (std::size_t i = 0; i < rows.size(); ++i)
        {
            CHECK(matches(fb.grad_input(i), expected(i)[1]));
            CHECK(matches(fb.grad_target(i), expected(i)[2]));
        }
    }
}

TEST_CASE("Special values: float, probabilities", "[special]")
{
    check_table<float>("float", false);
}

TEST_CASE("Special values: float, log_target", "[special]")
{
    check_table<float>("float", true);
}

TEST_CASE("Special values: double, probabilities", "[special]")
{
    check_table<double>("double", false);
}

TEST_CASE("Special values: double, log_target", "[special]")
{
    check_table<double>("double", true);
}

TEST_CASE("log_target: exp(t) out of range gives the limit, not NaN", "[special]")
{
    const float inf = std::numeric_limits<float>::infinity();
    // exp(-200) underflows in float: against x = -inf the term is +inf (PyTorch: 0 * inf = NaN).
    const xt::xarray<float> x = {-inf, inf, 100.f, -1.f};
    const xt::xarray<float> t = {-200.f, -200.f, 100.f, -200.f};
    const auto none = xloss::kl_div(x, t, xloss::reduction::none, true);
    CHECK(none(0) == inf);
    CHECK(none(1) == -inf);
    CHECK(none(2) == 0.f); // exp(100) overflows, t - x = 0
    CHECK(none(3) == 0.f); // underflow against a finite difference: 0
    const auto gt = xloss::kl_div_target_backward(1.f, x, t, xloss::reduction::none, true);
    CHECK(gt(0) == inf);
    CHECK(gt(1) == -inf);
}

TEST_CASE("A zero target gives +0 in the none loss, on full batches too, as PyTorch", "[special]")
{
    // t = 0 with log-probability inputs (x > log of the smallest normal): 0 * (log 0 - x) must not
    // come out as -0. (Under -ffast-math the sign of zero is the compiler's.)
    xt::xarray<float> x = xt::xarray<float>::from_shape({67});
    xt::xarray<float> t = xt::xarray<float>::from_shape({67});
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        x(i) = -0.5f - 0.25f * static_cast<float>(i % 7);
        t(i) = i % 3 == 0 ? 0.f : 0.5f;
    }
    const xt::xarray<double> xd = xt::cast<double>(x), td = xt::cast<double>(t);
    const auto none = xloss::kl_div(x, t, xloss::reduction::none);
    const auto none_d = xloss::kl_div(xd, td, xloss::reduction::none);
    for (std::size_t i = 0; i < x.size(); i += 3)
    {
#ifndef __FAST_MATH__
        CHECK_FALSE(std::signbit(none(i)));
        CHECK_FALSE(std::signbit(none_d(i)));
#endif
        CHECK(none(i) == 0.f);
        CHECK(none_d(i) == 0.);
    }
}
