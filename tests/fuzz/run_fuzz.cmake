# run_fuzz.cmake -- the fuzz_*_short tests: check the seeds, then fuzz for a while.
#
#   cmake -DFUZZER=path/to/fuzz_x -DCORPUS=tests/fuzz/corpus/x -DWORK=scratch/dir
#         -DSECONDS=20 [-DDICT=file.dict] [-DBAD_PREFIX=bad_] -P run_fuzz.cmake
#
# 1. Seed check: every seed is run once with RELAY_FUZZ_EXPECT=ok -- it must decode or
#    parse -- except, when BAD_PREFIX is set, the seeds named BAD_PREFIX*, which run with
#    RELAY_FUZZ_EXPECT=error and must be rejected.  The committed corpus cannot rot
#    silently (a renamed key, a decoder that now refuses real PostgreSQL output).
# 2. Fuzzing for SECONDS on a copy of the corpus in WORK (libFuzzer adds what it finds
#    to its first corpus directory; the committed one stays untouched), crash reproducers
#    written to WORK/artifacts.  Any crash, leak, sanitizer report, broken invariant or
#    timeout fails the test, as does a run that executed almost nothing.
cmake_minimum_required(VERSION 3.18)

foreach(var FUZZER CORPUS WORK SECONDS)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_fuzz.cmake: -D${var}= is required")
    endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB seeds "${CORPUS}/*")
list(LENGTH seeds nseeds)
if(nseeds LESS 10)
    message(FATAL_ERROR "only ${nseeds} seeds in ${CORPUS}")
endif()
file(COPY ${seeds} DESTINATION "${WORK}/corpus")

set(good ${seeds})
set(bad "")
if(DEFINED BAD_PREFIX)
    list(FILTER good EXCLUDE REGEX "/${BAD_PREFIX}[^/]*$")
    set(bad ${seeds})
    list(FILTER bad INCLUDE REGEX "/${BAD_PREFIX}[^/]*$")
endif()

function(seed_check expect files)
    if(NOT files)
        return()
    endif()
    execute_process(COMMAND ${CMAKE_COMMAND} -E env RELAY_FUZZ_EXPECT=${expect}
                            "${FUZZER}" -artifact_prefix=${WORK}/artifacts/ ${files}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "seed check (RELAY_FUZZ_EXPECT=${expect}) failed: ${rc}\n${err}")
    endif()
    list(LENGTH files n)
    message(STATUS "seed check: ${n} seeds ${expect}")
endfunction()
seed_check(ok "${good}")
seed_check(error "${bad}")

set(args -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix=${WORK}/artifacts/)
if(DEFINED DICT)
    list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND "${FUZZER}" ${args} "${WORK}/corpus"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(WRITE "${WORK}/fuzz.log" "${err}")
file(GLOB artifacts "${WORK}/artifacts/*")
if(NOT rc EQUAL 0 OR artifacts)
    string(LENGTH "${err}" len)
    if(len GREATER 20000)
        math(EXPR start "${len} - 20000")
        string(SUBSTRING "${err}" ${start} -1 err)
    endif()
    message(FATAL_ERROR "fuzzing failed (${rc}); reproducers: ${artifacts}\n"
                        "full log: ${WORK}/fuzz.log\n${err}")
endif()
if(NOT err MATCHES "Done ([0-9]+) runs" OR CMAKE_MATCH_1 LESS 1000)
    message(FATAL_ERROR "fuzzer executed too little (${CMAKE_MATCH_1} runs)\n${err}")
endif()
set(runs ${CMAKE_MATCH_1})
string(REGEX MATCH "#[0-9]+[ \t]+DONE[^\n]*" done "${err}")
message(STATUS "${runs} runs: ${done}")
