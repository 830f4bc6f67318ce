#!/usr/bin/env bash
# On the GPU machine: heygemd built against the PyTorch wheel's libtorch (which exports its own
# std::filesystem functions) runs a cancelled job and a finished one on CUDA, then its retention
# clean-up removes their spool folders (std::filesystem::remove_all on non-empty trees), and it is
# still alive and serving. Also runs the RuntimeLinking tests of that build. Exit 0 = all held.
# Usage: scripts/gpu/cleanup-check.sh [BUILD_DIR]   (after build-ffmpeg.sh and build-heygem.sh)
set -euo pipefail
build=${1:-build-gpu}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=${PREFIX:-/opt/heygem-deps}
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
heygemd=$repo/$build/daemon/heygemd
ctl=$repo/$build/cli/heygemctl
work=$(mktemp -d)
pid=""
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

echo "== NEEDED order of heygemd"
readelf -d "$heygemd" | grep NEEDED | head -4
echo "== RuntimeLinking tests"
"$repo/$build/tests/residency/test_residency" --gtest_filter='RuntimeLinking.*'

cat >"$work/heygemd.yaml" <<YAML
socket:
  path: $work/heygemd.sock
state_dir: $work/state
retention:
  max_age: 1s
  cleanup_interval: 1s
models:
  default_detector: ""
  entries:
    - {name: wav2lip, kind: wav2lip, weights: "", device: cuda, precision: float16, preload: true}
YAML
"$PREFIX/bin/ffmpeg" -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=25:duration=20 \
  -f lavfi -i sine=frequency=300:duration=20 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac \
  -shortest "$work/clip.mp4"
"$heygemd" --config "$work/heygemd.yaml" >"$work/heygemd.log" 2>&1 &
pid=$!
ctl=("$ctl" --socket "$work/heygemd.sock")
for _ in $(seq 600); do
  "${ctl[@]}" ping 2>/dev/null | grep -q 'pong' && ! "${ctl[@]}" ping | grep -q loading && break
  sleep 0.2
done
box=(--box 200,520,480,800)
cancelled=$("${ctl[@]}" submit --detach "${box[@]}" -a "$work/clip.mp4" "$work/clip.mp4")
for _ in $(seq 100); do "${ctl[@]}" status "$cancelled" | grep -q running && break; sleep 0.1; done
"${ctl[@]}" cancel "$cancelled"
"${ctl[@]}" wait "$cancelled" || echo "cancelled job ended with $? (4 = cancelled)"
done_job=$("${ctl[@]}" submit --detach "${box[@]}" -a "$work/clip.mp4" "$work/clip.mp4")
"${ctl[@]}" wait "$done_job"
echo "== spool before the clean-up"; ls "$work/state/spool"
sleep 4  # past max_age and at least one cleanup_interval
echo "== spool after the clean-up"; ls "$work/state/spool"
kill -0 "$pid" || { echo "heygemd died"; tail -20 "$work/heygemd.log"; exit 1; }
"${ctl[@]}" ping
left=$(ls "$work/state/spool" | wc -l)
grep -E 'retention|removed' "$work/heygemd.log" | tail -3
if [[ $left -ne 0 ]]; then echo "retention left $left spool folder(s)"; exit 1; fi
echo "cleanup-check: heygemd removed both jobs' spool folders and serves on"
