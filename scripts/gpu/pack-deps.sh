#!/usr/bin/env bash
# Builds the GPU machine's FFmpeg and x264 here (build-ffmpeg.sh, on an x86-64 Debian bookworm box:
# its glibc is older than the machine's) and packs $PREFIX into OUT_DIR/heygem-deps.tar.gz, which
# build-ffmpeg.sh unpacks there instead of building. Carry OUT_DIR (.gpu-prebuilt) with the call.
# Usage: pack-deps.sh [SRC (.gpu)] [OUT_DIR (.gpu-prebuilt)]; Env: PREFIX (/opt/heygem-deps).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src=${1:-$repo/.gpu}
out=${2:-$repo/.gpu-prebuilt}
PREFIX=${PREFIX:-/opt/heygem-deps}
[[ $PREFIX == /* ]] || { echo "PREFIX must be an absolute path" >&2; exit 2; }
PREFIX=$PREFIX PREBUILT=/nonexistent "$repo/scripts/gpu/build-ffmpeg.sh" "$src"
mkdir -p "$out"
tar -C / -czf "$out/heygem-deps.tar.gz" "${PREFIX#/}"
echo "packed $PREFIX into $out/heygem-deps.tar.gz ($(du -h "$out/heygem-deps.tar.gz" | cut -f1))"
