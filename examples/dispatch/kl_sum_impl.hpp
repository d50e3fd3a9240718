// The definition of kl_sum, for the kl_sum_<set>.cpp translation units only.
#ifndef XLOSS_EXAMPLE_KL_SUM_IMPL_HPP
#define XLOSS_EXAMPLE_KL_SUM_IMPL_HPP

#include <xloss/kl_div_kernel.hpp>

#include "kl_sum.hpp"

template <class Arch>
double kl_sum::operator()(Arch arch, const float* input, const float* target, std::size_t n) const noexcept
{
    return xloss::kl_div_sum_kernel{}(arch, input, target, n, false);
}

#endif
