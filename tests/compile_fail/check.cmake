# Builds TARGET in BUILD_DIR, which must fail with xloss's static_assert (EXPECT, by default the element
# types' message); with SINGLE_ERROR, as the only
# error the compiler prints (not the assertion followed by hundreds of lines from the instantiations
# after it). Complex elements, which do not even convert to float, give a few more.
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(result EQUAL 0)
    message(FATAL_ERROR "${TARGET} compiled; it must not")
endif()
if(NOT DEFINED EXPECT)
    set(EXPECT "xloss: losses take float or double elements")
endif()
if(NOT out MATCHES "${EXPECT}")
    message(FATAL_ERROR "${TARGET} failed without xloss's message:\n${out}")
endif()
string(REGEX MATCHALL "error:" errors "${out}")
list(LENGTH errors count)
if(SINGLE_ERROR AND NOT count EQUAL 1)
    message(FATAL_ERROR "${TARGET}: ${count} errors, expected the static_assert alone:\n${out}")
endif()
message(STATUS "${TARGET}: the static_assert, ${count} error(s)")
