# Installs xloss into a scratch prefix, then builds and runs a consumer against it
# (find_package) and one that embeds the source tree (add_subdirectory), with the compiler and
# the C++ standard of the suite. The consumer's source includes <xloss/xloss.hpp> alone; where the
# build found a BLAS (EXPECT_LINEAR) a second one links xloss::linear.
file(REMOVE_RECURSE "${WORK_DIR}")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
    endif()
    set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(consumer "${CMAKE_CURRENT_LIST_DIR}/consumer")
set(flags "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_CXX_STANDARD=${STANDARD}")

run(${CMAKE_COMMAND} --install "${XLOSS_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/installed" ${flags} "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
# The package says which dependencies it found.
string(REGEX MATCH "xloss: with xtensor [0-9.]+, xsimd [0-9.]+, xtl [0-9.]+" found "${last_output}")
if(NOT found)
    message(FATAL_ERROR "find_package(xloss) did not report its dependencies:\n${last_output}")
endif()
message(STATUS "${found}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/installed")
run("${WORK_DIR}/installed/consumer")
# xloss::linear (the component `linear`) where the build found a BLAS.
if(EXPECT_LINEAR)
    run("${WORK_DIR}/installed/consumer_linear")
    message(STATUS "installed linear: ok")
endif()
message(STATUS "installed: ok")

# pkg-config, as a build without CMake uses it: the same consumer compiled with `pkg-config --cflags xloss`
# (and xloss-linear's --cflags --libs for the fused linear one).
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config not found (Debian's pkgconf)")
endif()
set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig:$ENV{PKG_CONFIG_PATH}")
run(${PKG_CONFIG} --cflags xloss)
separate_arguments(cflags UNIX_COMMAND "${last_output}")
run(${CXX} -std=c++${STANDARD} -O1 ${cflags} "${consumer}/main.cpp" -o "${WORK_DIR}/pkg_consumer")
run("${WORK_DIR}/pkg_consumer")
if(EXPECT_LINEAR)
    run(${PKG_CONFIG} --cflags --libs xloss-linear)
    separate_arguments(flags_linear UNIX_COMMAND "${last_output}")
    run(${CXX} -std=c++${STANDARD} -O1 "${consumer}/linear.cpp" ${flags_linear} -o "${WORK_DIR}/pkg_consumer_linear")
    run("${WORK_DIR}/pkg_consumer_linear")
endif()
message(STATUS "pkg-config: ok")

run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/subdirectory" ${flags} "-DXLOSS_SUBDIRECTORY=${XLOSS_SOURCE_DIR}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/subdirectory")
run("${WORK_DIR}/subdirectory/consumer")
if(EXPECT_LINEAR)
    run("${WORK_DIR}/subdirectory/consumer_linear")
endif()
message(STATUS "subdirectory: ok")
