#!/usr/bin/env bash
# The README's test command: install dependencies, build, run the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd "${HEYGEM_BUILD_DIR:-build}"
# Suites labelled "long" (20-cycle soak, 64 x 4 load, 1 M fuzzing, full sanitizer build) run with `ctest -L long`.
ctest --output-on-failure -j "${HEYGEM_TEST_JOBS:-2}" -LE long "$@"
