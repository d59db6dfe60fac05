#!/usr/bin/env bash
# test.sh -- the whole test suite, from a fresh Debian 12 machine or a developer's
# checkout: installs what is missing, then
#   1. builds with gcc (-Wall -Wextra -Werror) and runs every test (unit, integration);
#   2. builds a gcc Release build (what packagers and Dockerfiles build), warning-free
#      under -Werror like the others -- optimisation finds warnings the others do not;
#   3. builds with clang (-Werror) under AddressSanitizer + UndefinedBehaviorSanitizer
#      and runs every test again, so the relay itself runs sanitized against a real
#      PostgreSQL and the dev broker.
# Integration tests start their own PostgreSQL (initdb in a temporary directory) and
# dev broker on loopback, and stop them afterwards.
#
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      pass ctest arguments (here: unit tests only)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== gcc build, all tests"
JOBS=$jobs scripts/build.sh >/dev/null
ctest --test-dir build --output-on-failure "$@"

echo "== gcc Release build"
JOBS=$jobs scripts/build.sh -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null

echo "== clang + AddressSanitizer + UndefinedBehaviorSanitizer build, all tests"
CC=clang JOBS=$jobs scripts/build.sh -B build-asan -DRELAY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The gcc pass makes the 20 SIGKILLs the fault suite promises; here the point is
# memory errors on the recovery path, which a handful of kills covers in half the time.
export SIGKILL_ITERATIONS="${SIGKILL_ITERATIONS:-8}"
# Likewise the sink tests' largest row counts (harness.scaled()): 30 % of the gcc pass's.
export OUTBOX_TEST_SCALE="${OUTBOX_TEST_SCALE:-0.3}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
ctest --test-dir build-asan --output-on-failure "$@"
