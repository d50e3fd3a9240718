# Installs xloss into a scratch prefix, then builds and runs a consumer against it
# (find_package) and one that embeds the source tree (add_subdirectory).
file(REMOVE_RECURSE "${WORK_DIR}")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
    endif()
endfunction()

set(consumer "${CMAKE_CURRENT_LIST_DIR}/consumer")

run(${CMAKE_COMMAND} --install "${XLOSS_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/installed" "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/installed")
run("${WORK_DIR}/installed/consumer")
message(STATUS "installed: ok")

run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/subdirectory" "-DXLOSS_SUBDIRECTORY=${XLOSS_SOURCE_DIR}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/subdirectory")
run("${WORK_DIR}/subdirectory/consumer")
message(STATUS "subdirectory: ok")
