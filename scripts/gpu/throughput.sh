#!/usr/bin/env bash
# Jobs at once on a GPU box (issues 15 and 19): N jobs of the benchmark clip submitted at once, each
# by its own heygemctl, through heygemd, against N plain x264 re-encodes of the same clip at once (the
# CPU's floor), for a fixed box and for RetinaFace on every frame. Each concurrent job's output is
# compared with the same job run alone. GPU utilisation and memory are sampled throughout.
# Writes $OUT/throughput.md (the table) and $OUT/throughput.ndjson (one record per measurement).
#
# Usage: scripts/gpu/throughput.sh            (after build-ffmpeg.sh and build-heygem.sh)
# Env:   JOBS_AT_ONCE (4), SLOTS (max_concurrent_jobs per device; default: heygemd's),
#        GPU_SETS ("all": the GPUs to expose, one run per set, e.g. "0 all" = one GPU, then every GPU),
#        MODES ("box retinaface"), BENCH_SECONDS (60), BUILD (build-gpu), PREFIX (/opt/heygem-deps),
#        HEYGEM_SHARED (../shared or .bench/shared), GEN_PRECISION (float16), PER_GPU (jobs per GPU:
#        JOBS_AT_ONCE is multiplied by the GPUs exposed when set, e.g. 8 for issue 19),
#        PLACEMENT (the model entries' placement key, "devices: all": a replica on every GPU),
#        WORKLOAD (a folder of scripts/bench/make-workload.sh to reuse; default: made here).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
OUT=${OUT:-/tmp/heygem-throughput-out}
PREFIX=${PREFIX:-/opt/heygem-deps}
build=${BUILD:-build-gpu}
jobs_at_once=${JOBS_AT_ONCE:-4}
modes=${MODES:-box retinaface}
gpu_sets=${GPU_SETS:-all}
seconds=${BENCH_SECONDS:-60}
precision=${GEN_PRECISION:-float16}
placement=${PLACEMENT:-devices: all}
export PATH="$PREFIX/bin:$PATH" LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -z ${HEYGEM_SHARED:-} ]]; then
  if [[ -d $repo/../shared/media ]]; then HEYGEM_SHARED=$repo/../shared; else HEYGEM_SHARED=$repo/.bench/shared; fi
fi
export HEYGEM_SHARED HEYGEM_FIXTURES=${HEYGEM_FIXTURES:-$HEYGEM_SHARED/fixtures}
work=$(mktemp -d /tmp/heygem-throughput.XXXXXX)
mkdir -p "$OUT"
records=$OUT/throughput.ndjson
: >"$records"
heygemd=$repo/$build/daemon/heygemd
heygemctl=$repo/$build/cli/heygemctl
[[ -x $heygemd && -x $heygemctl ]] || { echo "throughput: build $build first (scripts/gpu/build-heygem.sh)" >&2; exit 1; }
daemon_pid="" sampler=""
cleanup() {
  [[ -n $daemon_pid ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
record() {  # KEY VALUE [NOTE]
  printf '{"key":"%s","value":"%s","note":"%s"}\n' "$1" "$2" "${3:-}" >>"$records"
  printf '%-48s %s %s\n' "$1" "$2" "${3:-}"
}

# GPU sampling: utilisation and memory of every GPU every 200 ms; a phase's mean comes from its window.
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 |
    while IFS=, read -r index util memory; do echo "$(date +%s.%N) $index $util $memory"; done >"$work/gpu.log" &
  sampler=$!
fi
gpu_window() {  # START END -> per GPU "index:mean_util%/max_mem_MiB" words
  [[ -f $work/gpu.log ]] || { echo "no nvidia-smi"; return; }
  awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b { n[$2]++; u[$2] += $3; if ($4 > m[$2]) m[$2] = $4 }
    END { for (g in n) printf "gpu%s:%.0f%%/%dMiB ", g, u[g] / n[g], m[g] }' "$work/gpu.log"
}

wl=${WORKLOAD:-$work/wl}
if [[ ! -f $wl/clip.mp4 ]]; then
  echo "== workload"
  scripts/bench/make-workload.sh "$wl" "$seconds" 3 >"$work/workload.log" 2>&1 || { tail -20 "$work/workload.log"; exit 1; }
fi
clip=$wl/clip.mp4 speech=$wl/speech.wav
box=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["box_top_bottom_left_right"])))' "$wl/workload.json")
# shellcheck source=SCRIPTDIR/../bench/encode-defaults.sh
source scripts/bench/encode-defaults.sh
encode_defaults "$repo" || exit 1
crf=$floor_crf preset=$floor_preset

floor() {  # N: N re-encodes at once, wall seconds
  local n=$1 i start pids=()
  start=$(now)
  for ((i = 0; i < n; i++)); do
    ffmpeg -hide_banner -loglevel error -y -i "$clip" -c:v libx264 -preset "$preset" -crf "$crf" -c:a aac "$work/floor$i.mp4" &
    pids+=($!)
  done
  wait "${pids[@]}"  # not the GPU sampler
  elapsed "$start" "$(now)"
}

start_daemon() {  # VISIBLE_GPUS
  local visible=$1 slots_line=""
  [[ -n ${SLOTS:-} ]] && slots_line="scheduler: {max_concurrent_jobs: $SLOTS}"
  cat >"$work/heygemd.yaml" <<EOF
socket: {path: "$work/heygemd.sock"}
state_dir: "$work/state"
logging: {level: info}
$slots_line
models:
  directory: "$HEYGEM_SHARED/models"
  default_generator: wav2lip
  default_detector: retinaface
  entries:
    - {name: wav2lip, kind: wav2lip, weights: "", $placement, precision: $precision, preload: true}
    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, $placement, preload: true}
EOF
  rm -rf "$work/state"
  if [[ $visible == all ]]; then
    env -u CUDA_VISIBLE_DEVICES "$heygemd" --config "$work/heygemd.yaml" >"$work/heygemd.log" 2>&1 &
  else
    CUDA_VISIBLE_DEVICES=$visible "$heygemd" --config "$work/heygemd.yaml" >"$work/heygemd.log" 2>&1 &
  fi
  daemon_pid=$!
  local start
  start=$(now)
  until "$heygemctl" --socket "$work/heygemd.sock" --json ping 2>/dev/null | grep -q '"state":"ready"'; do
    kill -0 "$daemon_pid" 2>/dev/null || { echo "heygemd exited:"; tail -30 "$work/heygemd.log"; return 1; }
    sleep 0.1
  done
  record "ready_s[gpus=$visible]" "$(elapsed "$start" "$(now)")" "heygemd start -> ping says ready"
  "$heygemctl" --socket "$work/heygemd.sock" models
}
stop_daemon() { kill -TERM "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; daemon_pid=""; }

mode_args() { if [[ $1 == box ]]; then echo "--box $box"; else echo "--no-avatar-cache"; fi; }

# N jobs at once, each its own heygemctl (the clients), all started together.
concurrent() {  # MODE N -> wall seconds; outputs in $work/out-MODE-i.mp4
  local mode=$1 n=$2 i start failed=0 pids=()
  start=$(now)
  for ((i = 0; i < n; i++)); do
    # shellcheck disable=SC2046
    "$heygemctl" --socket "$work/heygemd.sock" --quiet submit --audio "$speech" --force -o "$work/out-$mode-$i.mp4" \
      $(mode_args "$mode") "$clip" 2>"$work/err-$mode-$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
  ((failed == 0)) || { echo "$failed of $n jobs failed: $(cat "$work"/err-"$mode"-* | head -5)" >&2; }
  elapsed "$start" "$(now)"
}

for set in $gpu_sets; do
  visible_count=$( [[ $set == all ]] && (nvidia-smi -L 2>/dev/null | wc -l) || echo "$set" | tr ',' '\n' | wc -l)
  n=$jobs_at_once
  [[ -n ${PER_GPU:-} ]] && n=$((PER_GPU * visible_count))
  echo "== GPUs $set ($visible_count visible): $n jobs at once"
  floor_one=$(floor 1)
  floor_n=$(floor "$n")
  record "floor_1_s" "$floor_one" "one x264 re-encode (-preset $preset -crf $crf)"
  record "floor_${n}_at_once_s[gpus=$set]" "$floor_n" "$n re-encodes at once"
  start_daemon "$set" || exit 1
  for mode in $modes; do
    # shellcheck disable=SC2046
    t0=$(now)
    "$heygemctl" --socket "$work/heygemd.sock" --quiet submit --audio "$speech" --force -o "$work/alone-$mode.mp4" \
      $(mode_args "$mode") "$clip" || { echo "the solo $mode job failed"; exit 1; }
    t1=$(now)
    record "alone_${mode}_s[gpus=$set]" "$(elapsed "$t0" "$t1")" "one job alone; $(gpu_window "$t0" "$t1")"
    t0=$(now)
    wall=$(concurrent "$mode" "$n")
    t1=$(now)
    record "concurrent_${mode}_${n}_s[gpus=$set]" "$wall" "$(gpu_window "$t0" "$t1")"
    record "concurrent_${mode}_over_floor[gpus=$set]" "$(awk -v a="$wall" -v b="$floor_n" 'BEGIN { printf "%.3f", a / b }')" \
      "goal <= 1.05 (issue 15)"
    record "jobs_per_hour_${mode}[gpus=$set]" "$(awk -v a="$wall" -v n="$n" 'BEGIN { printf "%.0f", n * 3600 / a }')"
    same=0
    for ((i = 0; i < n; i++)); do cmp -s "$work/alone-$mode.mp4" "$work/out-$mode-$i.mp4" && same=$((same + 1)); done
    record "identical_to_alone_${mode}[gpus=$set]" "$same/$n" "byte-identical MP4s"
  done
  "$heygemctl" --socket "$work/heygemd.sock" models
  stop_daemon
done

python3 - "$records" "$OUT/throughput.md" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
with open(sys.argv[2], "w") as out:
    out.write("| measurement | value | note |\n|---|---|---|\n")
    for r in rows:
        out.write(f"| {r['key']} | {r['value']} | {r['note']} |\n")
print(open(sys.argv[2]).read())
EOF
