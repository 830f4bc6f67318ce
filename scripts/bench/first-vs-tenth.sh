#!/usr/bin/env bash
# The first job after ready against the later ones, through the real heygemd and heygemctl (issue
# 16): starts heygemd with the default models (preloaded, device auto) and models.warm_pipeline on or
# off, waits for its ready line, runs JOBS identical jobs one after the other and prints one line per
# job: latency (heygemctl submit until it returned), the done event's wall_s, heygemd's CPU seconds.
#   KIND silent720: 1 s of GRID video scaled to 1280x720 with silent audio and a fixed box: the silence
#        gate passes every frame through, so no generator runs and the job is decode, the pipeline's
#        threads and x264 at the default settings, where the one-time costs are not drowned by the
#        generator's seconds on a CPU;
#   KIND speech: the latency test's 1-s GRID job (speech, fixed box, x264 ultrafast crf 35).
# Usage: scripts/bench/first-vs-tenth.sh BUILD_DIR on|off [JOBS=10] [KIND=silent720]
# Needs ffmpeg and ../shared (GRID clips, RetinaFace weights). Leaves nothing behind.
set -euo pipefail
build=$(cd "${1:?usage: first-vs-tenth.sh BUILD_DIR on|off [JOBS] [KIND]}" && pwd)
mode=${2:?on or off}
jobs=${3:-10}
kind=${4:-silent720}
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${HEYGEM_SHARED:-$root/../shared}
work=$(mktemp -d "${TMPDIR:-/tmp}/heygem-first-vs-tenth.XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
grid=$shared/media/grid
ff() { ffmpeg -nostdin -v error -y "$@"; }
case $kind in
  silent720)
    ff -i "$grid/lbax4n.mpg" -t 1 -an -vf scale=1280:720 -c:v libx264 -preset ultrafast -crf 10 "$work/face.mp4"
    ff -f lavfi -i anullsrc=r=16000:cl=mono -t 1 "$work/audio.wav"
    args=(--audio "$work/audio.wav" --box 177,640,451,878 "$work/face.mp4") ;;
  speech)
    ff -i "$grid/lbax4n.mpg" -t 1 -an -c:v libx264 -preset ultrafast -crf 10 "$work/face.mp4"
    ff -i "$grid/bbaf2n.mpg" -t 1 -vn -ac 1 -ar 16000 "$work/audio.wav"
    args=(--audio "$work/audio.wav" --box 71,256,127,247 --crf 35 --preset ultrafast "$work/face.mp4") ;;
  *) echo "first-vs-tenth: KIND is silent720 or speech, not $kind" >&2; exit 2 ;;
esac
cat > "$work/heygemd.yaml" <<YAML
socket:
  path: $work/heygemd.sock
state_dir: $work/state
models:
  directory: $shared/models
  warm_pipeline: $([[ $mode == on ]] && echo true || echo false)
YAML
"$build/daemon/heygemd" --config "$work/heygemd.yaml" > "$work/heygemd.log" 2>&1 &
pid=$!
until grep -q ' ready: ' "$work/heygemd.log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/heygemd.log" >&2; exit 1; }
  sleep 0.2
done
grep -o 'pipeline warm-up on .*' "$work/heygemd.log" || true
cpu() { awk -v tick="$(getconf CLK_TCK)" '{print ($14 + $15) / tick}' "/proc/$pid/stat"; }
for n in $(seq 1 "$jobs"); do
  before=$(cpu)
  start=$(date +%s.%N)
  out=$("$build/cli/heygemctl" --socket "$work/heygemd.sock" --json submit "${args[@]}" -o "$work/out$n.mp4")
  end=$(date +%s.%N)
  after=$(cpu)
  wall=$(python3 -c 'import json, sys
print(next(m["wall_s"] for m in map(json.loads, filter(str.strip, sys.stdin)) if m.get("event") == "done"))' <<< "$out")
  python3 -c 'import sys; m, k, n, s, e, w, b, a = sys.argv[1:]
print("%s %s job%s latency %.3f s pipeline %.3f s cpu %.2f s" % (m, k, n, float(e) - float(s), float(w), float(a) - float(b)))' \
    "$mode" "$kind" "$n" "$start" "$end" "$wall" "$before" "$after"
  rm -f "$work/out$n.mp4"
done
