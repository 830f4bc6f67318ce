#!/usr/bin/env bash
# The long load run: CLIENTS concurrent heygemctl clients x JOBS jobs each on a tiny input (fixed
# box). All must complete, FIFO must hold, and heygemd's open fds and resident memory must return
# to their baseline. It is the CI test hardening.Load.* with bigger numbers.
#
#   scripts/load.sh [CLIENTS [JOBS]]     default 64 clients x 4 jobs
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HEYGEM_BUILD_DIR:-build}
cmake --build "$build_dir" --target test_hardening -j "${HEYGEM_JOBS:-$(nproc)}"
HEYGEM_LOAD_CLIENTS=${1:-64} HEYGEM_LOAD_JOBS=${2:-4} \
  "$build_dir/tests/hardening/test_hardening" --gtest_filter='Load.*'
