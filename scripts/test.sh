#!/usr/bin/env bash
# test.sh - what `make test` runs: build and test four ways. Every stage
# must pass; the summary line at the end counts them.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-10}

stage() { printf '\n==== %s ====\n' "$*"; }

stage "release build + unit and integration tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

stage "AddressSanitizer + UndefinedBehaviorSanitizer build, same tests"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$JOBS")

stage "ThreadSanitizer build, the suites that run several event loops"
CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_TSAN=ON >/dev/null
cmake --build build-tsan -j"$JOBS" --target tabsyncd test_store_store_memory
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
   ctest --output-on-failure -j"$JOBS" -R 'js/workers|@2loops|store/store_memory')

stage "fuzzers, ${FUZZ_SECONDS}s each"
CC=clang cmake -S . -B build-fuzz -DTS_FUZZ=ON -DTS_TESTS=OFF -DTS_FUZZ_SECONDS="$FUZZ_SECONDS" >/dev/null
cmake --build build-fuzz -j"$JOBS"
(cd build-fuzz && ctest --output-on-failure -L fuzz)
