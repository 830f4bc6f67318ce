#!/usr/bin/env bash
# The benchmark's build on the GPU machine: the users' GPU set-up (scripts/setup.sh --gpu) against
# the FFmpeg that build-ffmpeg.sh installed into $PREFIX, with the tests, not installed.
# Usage: build-heygem.sh [BUILD_DIR]
# Env: PREFIX (/opt/heygem-deps), PYTHON, JOBS, HEYGEM_TORCH_CONFIG (as setup.sh),
#      BUILD_TARGETS (default: heygemd, heygemctl, heygem-bench, test_media and the parity test binaries).
set -euo pipefail
build=${1:-build-gpu}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export BUILD_TARGETS=${BUILD_TARGETS:-heygemd heygemctl heygem-bench test_media test_media_parity test_models_parity test_pipeline_parity}
exec "$repo/scripts/setup.sh" --gpu --no-deps --no-install --tests --deps-prefix "${PREFIX:-/opt/heygem-deps}" --build-dir "$build"
