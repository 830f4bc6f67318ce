#!/usr/bin/env bash
# Runs the reference Wav2Lip inference.py (the peer, unmodified, pinned commit 5c90fa9) end to end on
# one clip, including its final ffmpeg mux, and records its wall time, the mux's share and the frame
# count. With a box it skips detection (--box); without one it runs its S3FD on every frame, with the
# weights in $S3FD_WEIGHTS (the peer would otherwise try to download them).
# Usage: run-reference.sh WORK_DIR PREFIX CLIP AUDIO_WAV CHECKPOINT [TOP BOTTOM LEFT RIGHT]
# Env: PEER (<repo>/.bench/wav2lip-ref, from scripts/bench/fetch-reference.sh),
#      SHIM (<repo>/scripts/bench/shim: the numpy librosa stand-in),
#      PYTHON (python3), FFMPEG (ffmpeg: the program inference.py's mux calls), S3FD_WEIGHTS,
#      BENCH_METRICS (metrics.ndjson to append to; default WORK_DIR/metrics.ndjson).
set -euo pipefail

(( $# == 5 || $# == 9 )) || { sed -n 2,11p "$0" >&2; exit 2; }
work=$1 prefix=$2 clip=$(realpath "$3") audio=$(realpath "$4") checkpoint=$(realpath "$5")
shift 5
box=("$@")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
peer=${PEER:-$repo/.bench/wav2lip-ref}
shim=${SHIM:-$repo/scripts/bench/shim}
python=${PYTHON:-python3}
ffmpeg=$(command -v "${FFMPEG:-ffmpeg}") || { echo "run-reference: ffmpeg program not found (set FFMPEG)" >&2; exit 1; }
metrics=${BENCH_METRICS:-$work/metrics.ndjson}
source "$repo/scripts/bench/lib.sh"
BENCH_WORK=$work BENCH_METRICS=$metrics

[[ -f $peer/inference.py ]] || { echo "run-reference: $peer/inference.py missing (run scripts/bench/fetch-reference.sh, or set PEER)" >&2; exit 1; }
[[ -d $shim/librosa ]] || { echo "run-reference: $shim/librosa missing (set SHIM)" >&2; exit 1; }
[[ $audio == *.wav ]] || { echo "run-reference: $audio: give a 16 kHz mono WAV (the shim does not resample)" >&2; exit 1; }

# A scratch copy: inference.py writes temp/ and reads its S3FD weights from its own folder.
rm -rf "$work/peer" "$work/bin"
mkdir -p "$work/bin"
cp -r "$peer" "$work/peer"
mkdir -p "$work/peer/temp"
if (( ${#box[@]} == 0 )); then
  [[ -f ${S3FD_WEIGHTS:-} ]] || { echo "run-reference: S3FD_WEIGHTS must name the peer's s3fd.pth for a run with detection" >&2; exit 1; }
  ln -sf "$(realpath "$S3FD_WEIGHTS")" "$work/peer/face_detection/detection/sfd/s3fd.pth"
fi

# The mux runs through this wrapper, which logs its start and end (epoch seconds).
cat >"$work/bin/ffmpeg" <<EOF
#!/usr/bin/env bash
start=\$(date +%s.%N)
"$ffmpeg" "\$@"; rc=\$?
echo "\$start \$(date +%s.%N) \$rc" >>"$work/ffmpeg-times"
exit \$rc
EOF
chmod +x "$work/bin/ffmpeg"
: >"$work/ffmpeg-times"

args=(--checkpoint_path "$checkpoint" --face "$clip" --audio "$audio" --outfile "$work/out.mp4")
(( ${#box[@]} == 4 )) && args+=(--box "${box[@]}")
rm -f "$work/out.mp4"
# Stopped at the time limit: record how far it got (its last tqdm progress line) and since when.
progress_at_limit() {
  local last
  last=$(tr '\r' '\n' <"$work/inference.log" | grep -E '[0-9]+/[0-9]+ \[' | tail -1 | cut -c1-160)
  metric "${prefix}_outcome" "stopped at the time limit after $(awk -v a="$start" -v b="$(bench_now)" 'BEGIN { printf "%.1f", b - a }') s; last progress: ${last:-none}"
  exit 143
}
start=$(bench_now)
trap progress_at_limit TERM
rc=0
(cd "$work/peer" && PATH="$work/bin:$PATH" PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}" \
  exec "$python" inference.py "${args[@]}") >"$work/inference.log" 2>&1 &
wait $! || rc=$?
trap - TERM
end=$(bench_now)
tr '\r' '\n' <"$work/inference.log" | grep -v '^\s*$' | tail -n 25

frames=$(sed -n 's/^Length of mel chunks: \([0-9]*\).*/\1/p' "$work/inference.log" | tail -1)
if grep -q "Face not detected" "$work/inference.log"; then
  metric "${prefix}_outcome" "failed: Face not detected! (the peer stops on the first frame without a face)"
  exit 1
fi
if (( rc != 0 )) || [[ ! -s $work/out.mp4 ]]; then
  metric "${prefix}_outcome" "failed: inference.py exit $rc, output $( [[ -s $work/out.mp4 ]] && echo written || echo missing)"
  exit 1
fi
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
mux=$(awk '{ s += $2 - $1 } END { printf "%.3f", s }' "$work/ffmpeg-times")
metric "${prefix}_wall_s" "$wall" s "inference.py end to end (process start to muxed MP4)"
metric "${prefix}_mux_s" "$mux" s "its final ffmpeg call (re-encode with libx264 defaults + AAC)"
[[ -n $frames ]] && metric "${prefix}_frames" "$frames" frames "frames written (= mel chunks)"
[[ -n $frames ]] && metric "${prefix}_fps" "$(awk -v f="$frames" -v w="$wall" 'BEGIN { printf "%.2f", f / w }')" fps "end to end"
metric "${prefix}_outcome" ok
echo "reference $prefix: $frames frames in $wall s (mux $mux s)"
