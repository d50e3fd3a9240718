// The tests' one bridge between Catch2 v2 (Debian 12) and v3 (Debian 13, newest upstream): the same
// test files build on both.

#ifndef XLOSS_TEST_CATCH_COMPAT_HPP
#define XLOSS_TEST_CATCH_COMPAT_HPP

#include <string>

#if __has_include(<catch2/catch_version_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

using Catch::Approx;

namespace xloss_test
{
    /// Matches a string that contains `part`.
    inline auto contains(const std::string& part)
    {
        return Catch::Matchers::ContainsSubstring(part);
    }
}
#else
#include <catch2/catch.hpp>

namespace xloss_test
{
    /// Matches a string that contains `part`.
    inline auto contains(const std::string& part)
    {
        return Catch::Contains(part);
    }
}
#endif

#endif
