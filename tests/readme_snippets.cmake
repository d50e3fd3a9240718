cmake_minimum_required(VERSION 3.16)
# Compiles and runs every ```cpp block of README.md, so the README cannot drift
# from the code. Blocks in other languages (sh, cmake, text) are not compiled.
#   cmake -DREADME=... -DCXX=... -DINCLUDE_DIR=... -DSTANDARD=17|20 -DWORK_DIR=... -P readme_snippets.cmake
file(READ "${README}" text)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(count 0)
while(TRUE)
    string(FIND "${text}" "```cpp\n" start)
    if(start EQUAL -1)
        break()
    endif()
    math(EXPR start "${start} + 7")
    string(SUBSTRING "${text}" ${start} -1 text)
    string(FIND "${text}" "```" stop)
    string(SUBSTRING "${text}" 0 ${stop} code)
    string(SUBSTRING "${text}" ${stop} -1 text)

    math(EXPR count "${count} + 1")
    set(source "${WORK_DIR}/snippet_${count}.cpp")
    file(WRITE "${source}" "${code}")
    execute_process(COMMAND "${CXX}" -std=c++${STANDARD} -O1 -I "${INCLUDE_DIR}" "${source}" -o "${WORK_DIR}/snippet_${count}"
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "README snippet ${count} does not compile:\n${code}\n${err}")
    endif()
    execute_process(COMMAND "${WORK_DIR}/snippet_${count}" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "README snippet ${count} exits with ${rc}:\n${out}")
    endif()
endwhile()

if(count EQUAL 0)
    message(FATAL_ERROR "no ```cpp snippet found in ${README}")
endif()
message(STATUS "README snippets compiled and run: ${count}")
