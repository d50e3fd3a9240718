// The kernel for avx512, compiled with that instruction set's flags (see ../CMakeLists.txt).
#include "kl_sum_impl.hpp"

XLOSS_KL_SUM_INSTANCE(xsimd::avx512bw);
