#!/usr/bin/env bash
# The README's demo (main job): installs the Debian packages, builds, starts heygemd on a private
# socket and lip-syncs one GRID clip with another clip's audio through heygemctl.
#
#   scripts/demo.sh [OUTPUT.mp4]            default: demo-output/lbax4n.lipsync.mp4
#
# Real generator weights: set HEYGEM_WAV2LIP_WEIGHTS=/path/to/wav2lip_gan.pth. Without them the
# daemon uses the untrained hash-init generator (the mouth changes, but it is not a real lip-sync).
# RetinaFace weights come from HEYGEM_MODELS_DIR (default ../shared/models).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
output=$(realpath -m "${1:-demo-output/lbax4n.lipsync.mp4}")
shared=$(realpath -m "${HEYGEM_SHARED:-$root/../shared}")
models_dir=$(realpath -m "${HEYGEM_MODELS_DIR:-$shared/models}")
video=$shared/media/grid/lbax4n.mpg
audio=$shared/media/grid/bbaf2n.mpg

scripts/install-deps.sh
scripts/build.sh >/dev/null
build=${HEYGEM_BUILD_DIR:-build}

for f in "$video" "$audio" "$models_dir/retinaface_mobilenet0.25.pth"; do
  [[ -f $f ]] || { echo "demo: missing $f (set HEYGEM_SHARED or HEYGEM_MODELS_DIR)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/heygem-demo.XXXXXX)
daemon_pid=
cleanup() {
  if [[ -n $daemon_pid ]]; then kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

weights=${HEYGEM_WAV2LIP_WEIGHTS:-}
if [[ -z $weights ]]; then
  cat >&2 <<'WARN'
demo: WARNING: no Wav2Lip weights configured (HEYGEM_WAV2LIP_WEIGHTS unset).
demo: WARNING: using the UNTRAINED hash-init generator: the mouth region is re-rendered, but it is
demo: WARNING: not a real lip-sync. Point HEYGEM_WAV2LIP_WEIGHTS at wav2lip_gan.pth for real results.
WARN
fi

cat >"$work/heygemd.yaml" <<YAML
socket:
  path: $work/heygemd.sock
state_dir: $work/state
models:
  directory: $models_dir
  entries:
    - name: wav2lip
      kind: wav2lip
      weights: "$weights"
      device: cpu
      precision: float32
      preload: true
      keep_alive: forever
    - name: retinaface
      kind: retinaface
      weights: retinaface_mobilenet0.25.pth
      device: cpu
      precision: float32
      preload: true
      keep_alive: forever
YAML

"$build/daemon/heygemd" --config "$work/heygemd.yaml" >"$work/heygemd.log" 2>&1 &
daemon_pid=$!
ctl=("$build/cli/heygemctl" --socket "$work/heygemd.sock")
for _ in $(seq 1 600); do
  "${ctl[@]}" ping >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/heygemd.log" >&2; echo "demo: heygemd exited" >&2; exit 1; }
  sleep 0.2
done
"${ctl[@]}" models

mkdir -p "$(dirname "$output")"
echo "demo: lip-syncing $(basename "$video") to the audio of $(basename "$audio")"
"${ctl[@]}" submit --force --audio "$audio" "$video" -o "$output"
echo "demo: wrote $output"
ffprobe -v error -show_entries stream=codec_type,codec_name,width,height,r_frame_rate,duration -of compact "$output"
