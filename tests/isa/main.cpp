// Built for baseline x86-64 and linked with an AVX-512 translation unit that calls the same xloss
// functions. Run as `isa_main baseline` under a CPU model without AVX (qemu-x86_64 -cpu Nehalem), the
// baseline path must never execute a wider instruction; run natively as `isa_main both`, the two
// copies must agree (on a CPU without AVX-512 the test is skipped, exit 77: the linker may keep the AVX-512 copy of
// xtensor's inline functions, which the baseline object calls too).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "loss.hpp"

int main(int argc, char** argv)
{
    const bool both = argc > 1 && std::strcmp(argv[1], "both") == 0;
    if (both
        && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
             && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")))
    {
        std::printf("this CPU has no AVX-512: the wide copy cannot run\n");
        return 77;
    }
    const double base = baseline_loss();
    std::printf("baseline: %.9g\n", base);
    if (both)
    {
        const double wide = wide_loss();
        std::printf("avx-512: %.9g\n", wide);
        if (std::abs(wide - base) > 1e-5 * std::abs(base))
        {
            std::printf("the copies DISAGREE\n");
            return 1;
        }
    }
    std::printf("isa ok\n");
    return 0;
}
