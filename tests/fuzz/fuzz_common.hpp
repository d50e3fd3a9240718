// What the libFuzzer targets share: the byte reader, the value decoder, shapes, and the
// check of a value against its long-double reference that aborts with a description.

#ifndef XLOSS_FUZZ_COMMON_HPP
#define XLOSS_FUZZ_COMMON_HPP

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace xloss_fuzz
{
    using ld = long double;

    struct byte_reader
    {
        const std::uint8_t* data;
        std::size_t size;
        std::size_t pos = 0;

        std::uint8_t next() noexcept
        {
            return pos < size ? data[pos++] : 0;
        }
    };

    template <class T>
    T decode_value(byte_reader& in)
    {
        using lim = std::numeric_limits<T>;
        const std::uint8_t k = in.next();
        switch (k % 64)
        {
            case 0:
                return lim::quiet_NaN();
            case 1:
                return lim::infinity();
            case 2:
                return -lim::infinity();
            case 3:
                return T(0);
            case 4:
                return -T(0);
            case 5:
                return lim::denorm_min();
            case 6:
                return lim::min() / 4;
            case 7:
                return lim::min();
            case 8:
                return lim::max();
            case 9:
                return -lim::max();
            case 10:
                return T(1);
            case 11:
                return T(-1);
            case 12:
                return T(0.5);
            case 13:
                return T(2);
            case 14:
                return T(1e-30);
            case 15:
                return T(-1e-30);
            default:
                break;
        }
        // A finite number: 15 bits of mantissa and sign, exponent from k.
        const int m = static_cast<std::int16_t>((in.next() << 8) | in.next());
        return static_cast<T>(std::ldexp(static_cast<double>(m) / 32768.0, static_cast<int>(k % 48) - 24));
    }

    using shape_t = std::vector<std::size_t>;

    inline std::size_t numel(const shape_t& s)
    {
        std::size_t n = 1;
        for (auto d : s)
        {
            n *= d;
        }
        return n;
    }

    /// The flat index in an argument of shape `arg` of the element at broadcast flat index i.
    inline std::size_t source_index(std::size_t i, const shape_t& full, const shape_t& arg)
    {
        std::size_t index = 0, stride = 1;
        for (std::size_t k = 0; k < full.size(); ++k)
        {
            const std::size_t axis = full.size() - 1 - k;
            const std::size_t coord = i % full[axis];
            i /= full[axis];
            if (k < arg.size())
            {
                const std::size_t a = arg.size() - 1 - k;
                index += (arg[a] == 1 ? 0 : coord) * stride;
                stride *= arg[a];
            }
        }
        return index;
    }

    /// What the current input decoded to, printed with a mismatch.
    inline std::string g_context;

    [[noreturn]] inline void fail(const std::string& what, ld got, ld expected, ld bound)
    {
        std::fprintf(stderr, "MISMATCH: %s: got %.20Lg, expected %.20Lg (error bound %.6Lg)\n%s\n", what.c_str(), got,
                     expected, bound, g_context.c_str());
        std::abort();
    }

    template <class E>
    std::string describe(const char* name, const E& e)
    {
        std::string s = std::string(name) + " shape (";
        for (auto d : e.shape())
        {
            s += std::to_string(d) + ",";
        }
        s += "):";
        char buf[64];
        for (auto v : e)
        {
            std::snprintf(buf, sizeof buf, " %.9g", static_cast<double>(v));
            s += buf;
        }
        return s + "\n";
    }

    /// One value of type T against its reference: NaN and infinities exactly, finite ones
    /// within a bound proportional to the magnitudes that went into them.
    template <class T>
    void check(const std::string& what, T got, ld expected, ld magnitude)
    {
        using lim = std::numeric_limits<T>;
        const ld tol = 64 * static_cast<ld>(lim::epsilon()) * magnitude + 8 * static_cast<ld>(lim::min());
        if (std::isnan(expected) || std::isnan(got))
        {
            if (std::isnan(expected) != std::isnan(static_cast<ld>(got)))
            {
                fail(what, got, expected, tol);
            }
            return;
        }
        const ld top = static_cast<ld>(lim::max());
        if (std::isinf(got) || std::isinf(expected) || std::abs(expected) > top)
        {
            // Infinities match by sign; a result that rounds to the edge of the range may be either.
            const bool same = std::isinf(got) && std::isinf(expected) && (got > 0) == (expected > 0);
            const bool edge = std::abs(expected) + tol >= top && std::abs(static_cast<ld>(got)) + tol >= top
                              && (got > 0) == (expected > 0);
            // An exact result past V's range rounds to the infinity of its sign (a NaN bound, from
            // infinite magnitudes, decides nothing).
            const bool beyond = std::abs(expected) > top && std::isinf(got) && (got > 0) == (expected > 0);
            if (!same && !edge && !beyond)
            {
                fail(what, got, expected, tol);
            }
            return;
        }
        if (std::abs(static_cast<ld>(got) - expected) > tol)
        {
            fail(what, got, expected, tol);
        }
    }

}

#endif
