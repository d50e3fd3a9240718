# xloss's dependencies, found the same way by its own build and by its installed package.
# Their version files do not agree (xsimd's accepts a single major version), so they are found
# without a version and checked here against what xloss supports and tests:
#   xtensor 0.24 to 0.27, xsimd 8.1 to 14, xtl 0.7 to 0.8.
include(CMakeFindDependencyMacro)

macro(xloss_find_dependency name min max)
    if(CMAKE_FIND_PACKAGE_NAME STREQUAL "xloss")
        find_dependency(${name}) # inside find_package(xloss): forwards QUIET and REQUIRED
    else()
        find_package(${name} REQUIRED)
    endif()
    if(${name}_VERSION VERSION_LESS ${min})
        message(FATAL_ERROR "xloss: needs ${name} ${min} or newer; found ${${name}_VERSION} in ${${name}_DIR}")
    elseif(NOT ${name}_VERSION VERSION_LESS ${max})
        message(WARNING "xloss: ${name} ${${name}_VERSION} is newer than the versions xloss is tested with "
                        "(${min} up to, not including, ${max})")
    endif()
endmacro()

xloss_find_dependency(xtl 0.7 0.9)
xloss_find_dependency(xsimd 8.1 15)
xloss_find_dependency(xtensor 0.24 0.28)
if(NOT xloss_FIND_QUIETLY)
    message(STATUS "xloss: with xtensor ${xtensor_VERSION}, xsimd ${xsimd_VERSION}, xtl ${xtl_VERSION}")
endif()
