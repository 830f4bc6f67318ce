#!/usr/bin/env bash
# The long crash soak: kill -9 at random points while a queue of jobs runs, restart, repeat; then
# every job must be done exactly once with a valid output and nothing may leak in the spool.
# It is the CI test hardening.CrashSoak.* with bigger numbers.
#
#   scripts/soak.sh [CYCLES [JOBS]]      default 20 cycles over a queue of 6 jobs
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HEYGEM_BUILD_DIR:-build}
cmake --build "$build_dir" --target test_hardening -j "${HEYGEM_JOBS:-$(nproc)}"
HEYGEM_SOAK_CYCLES=${1:-20} HEYGEM_SOAK_JOBS=${2:-6} \
  "$build_dir/tests/hardening/test_hardening" --gtest_filter='CrashSoak.*'
