// The kernel for avx2, compiled with that instruction set's flags (see ../CMakeLists.txt).
#include "kl_sum_impl.hpp"

XLOSS_KL_SUM_INSTANCE(xsimd::fma3<xsimd::avx2>);
