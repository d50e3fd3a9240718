/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_CORE_ALLOCATE_HPP
#define XLOSS_DETAIL_CORE_ALLOCATE_HPP

// The arrays the allocating calls return. A large one is a fresh mapping from the C library,
// whose first write faults once per 4 KiB page; on Linux it is advised for transparent huge
// pages before that write (64 MiB: 27 ms of faults, 5.8 ms advised, on the README's machine).

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "expression.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// Advises the 2 MiB pages wholly inside [data, data + bytes) for huge pages, from 8 MiB
            /// up; nothing elsewhere than on Linux. Advice only: the kernel may ignore it (THP off).
            inline void advise_huge_pages(void* data, std::size_t bytes) noexcept
            {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
                constexpr std::uintptr_t huge = std::uintptr_t(1) << 21;
                if (bytes < 4 * huge)
                {
                    return;
                }
                // The aligned range as offsets into the block: the address stays a pointer (no
                // integer-to-pointer cast, which hides its provenance from the optimiser).
                const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(data);
                const std::uintptr_t begin = (first + huge - 1) & ~(huge - 1);
                const std::uintptr_t end = (first + bytes) & ~(huge - 1);
                (void)madvise(static_cast<char*>(data) + (begin - first), end - begin, MADV_HUGEPAGE);
#else
                (void)data;
                (void)bytes;
#endif
            }

            /// An uninitialised array of `shape` for a call to write, large ones on huge pages.
            template <class V>
            inline xt::xarray<V> new_array(const shape_type& shape)
            {
                xt::xarray<V> a = xt::xarray<V>::from_shape(shape);
                advise_huge_pages(a.data(), a.size() * sizeof(V));
                return a;
            }
        }
    }
}

#endif
