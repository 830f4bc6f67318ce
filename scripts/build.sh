#!/usr/bin/env bash
# Configures and builds heygem into ${HEYGEM_BUILD_DIR:-build} with ninja (+ ccache when present).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HEYGEM_BUILD_DIR:-build}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${HEYGEM_BUILD_TYPE:-RelWithDebInfo} "$@"
cmake --build "$build_dir" -j "${HEYGEM_JOBS:-$(nproc)}"
