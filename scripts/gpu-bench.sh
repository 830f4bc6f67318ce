#!/usr/bin/env bash
# The GPU benchmark of issue 7 in one command (docs/bench.md): builds FFmpeg and heygem on the GPU
# machine, runs the CUDA parity tests, then measures heygem against the x264 floor and the Wav2Lip
# reference. Writes results.md, results.json and bench.log to $OUT (default /tmp/heygem-bench-out).
# Every phase has a time limit within the run's budget; a failing phase is recorded and the phases
# that do not depend on it still run.
# Env: OUT, BENCH_COMMIT (the commit to report; default git HEAD), BENCH_BUDGET_S (540), BENCH_WORK_DIR (/tmp/heygem-bench), BENCH_SECONDS (60),
#      HEYGEM_SHARED (../shared if present, else .bench/shared), HEYGEM_FIXTURES, PREFIX (/opt/heygem-deps),
#      BENCH_BUILD_DIR (build-gpu), BENCH_GENERATOR_PRECISION (float16), BENCH_DETECTOR_PRECISION (float32),
#      BENCH_RESTORER_BATCH (8), BENCH_RESTORER_PRECISION (float16),
#      BENCH_DEVICE (cuda), BENCH_PARITY_REGEX (the ctest -R of the parity phase, default parity),
#      BENCH_THROUGHPUT_MODES ("box retinaface"), BENCH_SKIP (space-separated phase names to leave out, e.g. "deps build"),
#      PEER (the reference, .bench/wav2lip-ref: scripts/bench/fetch-reference.sh puts it there).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
OUT=${OUT:-/tmp/heygem-bench-out}
work=${BENCH_WORK_DIR:-/tmp/heygem-bench}
budget=${BENCH_BUDGET_S:-540}
seconds=${BENCH_SECONDS:-60}
device=${BENCH_DEVICE:-cuda}
build=${BENCH_BUILD_DIR:-build-gpu}
gen_precision=${BENCH_GENERATOR_PRECISION:-float16}
det_precision=${BENCH_DETECTOR_PRECISION:-float32}
skip=" ${BENCH_SKIP:-} "
export PREFIX=${PREFIX:-/opt/heygem-deps}
if [[ -z ${HEYGEM_SHARED:-} ]]; then
  if [[ -d $repo/../shared/media ]]; then HEYGEM_SHARED=$repo/../shared; else HEYGEM_SHARED=$repo/.bench/shared; fi
fi
export HEYGEM_SHARED
export HEYGEM_FIXTURES=${HEYGEM_FIXTURES:-$HEYGEM_SHARED/fixtures}
export PATH="$PREFIX/bin:$PATH" LD_LIBRARY_PATH="$PREFIX/lib:$PREFIX/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python=${PYTHON:-python3}
bench=$repo/scripts/bench
export PEER=${PEER:-$repo/.bench/wav2lip-ref}

rm -rf "$work"
source "$bench/lib.sh"
source "$bench/encode-defaults.sh"
bench_init "$work" "$OUT/bench.log" "$budget"
metrics=$work/metrics.ndjson
wl=$work/workload
weights=$work/weights
hg=$work/heygem
mkdir -p "$wl" "$weights" "$hg"
wanted() { [[ $skip != *" $1 "* ]]; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------------------------------- machine
gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
"$python" - "$work/info.json" "$gpu_line" "$device" "$gen_precision" "$det_precision" <<'EOF'
import datetime, json, os, subprocess, sys
out, gpu, device, gen, det = sys.argv[1:6]
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as error:
        return f"unavailable ({error})"
torch = run(sys.executable, "-c", "import torch; print(torch.__version__, 'cuda', torch.version.cuda)")
json.dump({"device": gpu.split(",")[0].strip() if gpu else "no GPU", "gpu": gpu or "nvidia-smi unavailable",
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           # BENCH_COMMIT: the device's copy of .git may lag the working tree it was sent with
           "commit": os.environ.get("BENCH_COMMIT") or run("git", "rev-parse", "--short", "HEAD"),
           "dirty": bool(run("git", "status", "--porcelain", "-uno")),
           "cpus": os.cpu_count(), "python_torch": torch, "bench_device": device,
           "generator_precision": gen, "detector_precision": det}, open(out, "w"), indent=1)
EOF
sampler=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 250 >"$work/gpumem.csv" 2>/dev/null &
  sampler=$!
fi
gpu_memory_metric() {  # KEY NOTE: the GPU's memory in use now, when nvidia-smi answers
  local used
  used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
  [[ $used =~ ^[0-9]+$ ]] && metric "$1" "$used" MiB "$2"
  return 0
}
daemon_pid=""
cleanup() {
  bench_kill_all
  [[ -n $daemon_pid ]] && kill -TERM "$daemon_pid" 2>/dev/null
  [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # so that cleanup runs: phases live in process groups of their own

# ------------------------------------------------------------------- deps, workload, peer weights
if wanted deps; then
  phase deps 240 60 "$repo/scripts/gpu/build-ffmpeg.sh" "$repo/.gpu"
fi
ffmpeg_bin=$(command -v ffmpeg || true)
[[ -x $PREFIX/bin/ffmpeg ]] && ffmpeg_bin=$PREFIX/bin/ffmpeg
export FFMPEG=${ffmpeg_bin:-ffmpeg}

# Unmeasured preparation overlaps the heygem build.
wanted workload && phase_start workload 120 30 "$bench/make-workload.sh" "$wl" "$seconds" 3
make_peer_weights() {
  "$python" "$bench/make_checkpoint.py" --fixtures "$HEYGEM_FIXTURES" --model wav2lip --out "$weights/wav2lip_hashinit.pth" &&
    "$python" "$bench/make_checkpoint.py" --fixtures "$HEYGEM_FIXTURES" --model s3fd --out "$weights/s3fd.pth"
}
wanted peer-weights && phase_start peer-weights 150 30 make_peer_weights
wanted build && phase build 360 120 "$repo/scripts/gpu/build-heygem.sh" "$build"
wanted workload && phase_wait workload
wanted peer-weights && phase_wait peer-weights
[[ -f $wl/workload.json ]] && cp "$wl/workload.json" "$work/workload.json"
box_csv="" box_args=()
if [[ -f $wl/workload.json ]]; then
  box_csv=$("$python" -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["box_top_bottom_left_right"])))' "$wl/workload.json")
  IFS=, read -r -a box_args <<<"$box_csv"
fi

# ------------------------------------------------------------------------------- parity on CUDA
run_parity() {
  [[ -f $build/CTestTestfile.cmake ]] || { echo "no ctest files in $build (build failed?)"; return 1; }
  local rc=0
  (cd "$build" && HEYGEM_TEST_DEVICE=$device ctest -R "${BENCH_PARITY_REGEX:-parity}" --output-on-failure --timeout 120) >"$work/parity.out" 2>&1 || rc=$?
  # a crash that the test's own handler cannot place (no unwind information) gets a debugger's stack
  if grep -q "crashed with signal" "$work/parity.out" && command -v gdb >/dev/null; then
    local binary
    binary=$(find "$build" -type f -name test_pipeline_parity -perm -u+x | head -1)
    [[ -n $binary ]] && (cd "$build" && HEYGEM_TEST_DEVICE=$device timeout 60 gdb -batch -ex run -ex bt -ex "info threads" \
      --args "$binary" --gtest_filter='E2eParity.*') >>"$work/parity.out" 2>&1
  fi
  # NVDEC against the CPU decode (issue 16): the frames and the largest difference
  local media_tests
  media_tests=$(find "$build" -type f -name test_media -perm -u+x | head -1)
  if [[ -n $media_tests ]]; then "$media_tests" --gtest_filter='*Nvdec*' >>"$work/parity.out" 2>&1 || rc=$?; fi
  cp "$work/parity.out" "$OUT/parity.out" 2>/dev/null
  grep -E "largest difference|half|float16|bfloat16|error" "$work/parity.out" | head -30
  tail -n 40 "$work/parity.out"
  "$python" "$bench/record.py" "$metrics" ctest "$work/parity.out" parity_tests || true
  return $rc
}
wanted parity && phase parity 150 30 run_parity

# ------------------------------------------------------------------------------ (a) the x264 floor
run_floor() {
  local crf preset start end
  encode_defaults "$repo" || return 1
  crf=$floor_crf preset=$floor_preset
  start=$(bench_now)
  "$FFMPEG" -hide_banner -loglevel error -y -i "$wl/clip.mp4" -c:v libx264 -preset "$preset" -crf "$crf" -c:a aac "$work/floor.mp4" || return 1
  end=$(bench_now)
  metric floor_wall_s "$(elapsed "$start" "$end")" s "ffmpeg -i clip -c:v libx264 -preset $preset -crf $crf -c:a aac (heygem's EncodeOptions defaults)"
  metric floor_fps "$(awk -v f="$seconds" -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", f * 25 / (b - a) }')" fps
}
wanted floor && [[ -f $wl/clip.mp4 ]] && phase floor 90 10 run_floor

# ------------------------------------------------------------------- (b)-(e) heygem through heygemd
find_binary() { find "$build" -type f -name "$1" -perm -u+x 2>/dev/null | head -1; }
heygemd=$(find_binary heygemd)
heygemctl=$(find_binary heygemctl)
sock=$hg/heygemd.sock
ctl() { "$heygemctl" --socket "$sock" "$@"; }

write_daemon_config() {
  local s3fd_entry=""
  [[ -f $weights/s3fd.pth ]] && s3fd_entry="
    - {name: s3fd, kind: s3fd, weights: \"$weights/s3fd.pth\", device: $device, precision: $det_precision, preload: false}"
  cat >"$hg/heygemd.yaml" <<EOF
# Written by scripts/gpu-bench.sh.
socket: {path: "$sock"}
state_dir: "$hg/state"
logging: {level: info}
models:
  directory: "$HEYGEM_SHARED/models"
  default_generator: wav2lip
  default_detector: retinaface
  entries:
    - {name: wav2lip, kind: wav2lip, weights: "", device: $device, precision: $gen_precision, preload: true}
    - {name: wav2lip_fp32, kind: wav2lip, weights: "", device: $device, precision: float32, preload: false}
    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: $device, precision: $det_precision, preload: true}$s3fd_entry
EOF
}

# job NAME CLIP AUDIO [submit options...]: one job through heygemctl, timed from the outside.
job() {
  local name=$1 clip=$2 audio=$3 start end rc=0
  shift 3
  start=$(bench_now)
  ctl --json submit --audio "$audio" --force -o "$hg/$name.mp4" "$@" "$clip" >"$hg/$name.events" 2>"$hg/$name.err" || rc=$?
  end=$(bench_now)
  if (( rc != 0 )); then
    echo "job $name: heygemctl exit $rc: $(tail -c 400 "$hg/$name.err") $(tail -n 2 "$hg/$name.events" | cut -c1-400)"
    return 1
  fi
  JOB_WALL=$(elapsed "$start" "$end")
  "$python" "$bench/record.py" "$metrics" job-events "$hg/$name.events" "$name" || true
  echo "job $name: $JOB_WALL s"
}

wait_ready() {
  local start=$1 end
  until ctl ping >/dev/null 2>&1; do
    kill -0 "$daemon_pid" 2>/dev/null || { echo "heygemd exited:"; tail -n 30 "$DAEMON_LOG"; return 1; }
    sleep 0.05
  done
  end=$(bench_now)
  metric "heygemd_ready${READY_SUFFIX}_s" "$(elapsed "$start" "$end")" s "heygemd start -> first successful heygemctl ping (models preloaded and warm)"
  ctl models >"$hg/models.txt" 2>&1 && cat "$hg/models.txt"
  ctl --json models >"$OUT/models${READY_SUFFIX}.json" 2>/dev/null
  sleep 2
  gpu_memory_metric "heygem_idle_gpu${READY_SUFFIX}_mib" "heygemd ready, models resident, no job"
}

latency_jobs() {  # (d) ten short jobs with detection, one after the other
  local i walls=()
  for i in $(seq 1 10); do
    # each job detects: with the avatar cache, jobs 2-10 would reuse job 1's faces of this clip
    job "short$i" "$wl/short.mp4" "$wl/short.wav" --no-avatar-cache || return 1
    walls+=("$JOB_WALL")
    metric "job${i}_wall_s" "$JOB_WALL" s "short clip (3 s, 720p) with RetinaFace"
  done
  printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' |
    { read -r median; metric jobs_median_wall_s "$median" s "median of the ten short jobs"; }
}

long_job() {  # NAME [submit options...]
  local name=$1
  shift
  job "$name" "$wl/clip.mp4" "$wl/speech.wav" "$@" || return 1
  metric "${name}_wall_s" "$JOB_WALL" s "heygemctl submit -> MP4 written, ${seconds} s 720p clip"
}
s3fd_job() {
  job s3fd_warmup "$wl/short.mp4" "$wl/short.wav" --detector s3fd || return 1
  metric heygem_s3fd_warmup_wall_s "$JOB_WALL" s "first S3FD job (short clip): cudnn autotuning at 720p"
  long_job heygem_s3fd --detector s3fd
}
fp32_job() {
  job fp32_warmup "$wl/short.mp4" "$wl/short.wav" --generator wav2lip_fp32 --box "$box_csv" || return 1
  long_job heygem_box_fp32 --generator wav2lip_fp32 --box "$box_csv"
}

bench_binary=$(find_binary heygem-bench)
run_heygem_bench() {  # (c) per-stage throughput, and (g) our S3FD forward, from tests/bench's heygem-bench
  "$bench_binary" --help 2>&1 | head -40
  local common=(--audio "$wl/speech.wav" --video "$wl/clip.mp4" --device "$device" --precision "$gen_precision" --json)
  "$bench_binary" "${common[@]}" --box "$box_csv" >"$hg/bench-box.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-box.out" heygem_bench_box || { tail -n 20 "$hg/bench-box.out"; return 1; }
  "$bench_binary" "${common[@]}" --detector retinaface >"$hg/bench-retinaface.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-retinaface.out" heygem_bench_retinaface || tail -n 20 "$hg/bench-retinaface.out"
  # hash-init S3FD weights make every anchor a candidate: the full detection is timed on 16 frames only
  "$bench_binary" --detector-only s3fd --weights "$weights/s3fd.pth" --video "$wl/clip.mp4" --frames 64 --batch 16 \
    --detect-frames 16 --device "$device" --json >"$hg/bench-s3fd.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-s3fd.out" heygem_s3fd || { tail -n 20 "$hg/bench-s3fd.out"; return 1; }
  # float16 next to float32: float32 runs with TF32 off (IEEE), the reference's PyTorch lets cuDNN
  # use TF32 for its convolutions
  "$bench_binary" --detector-only s3fd --weights "$weights/s3fd.pth" --video "$wl/clip.mp4" --frames 64 --batch 16 \
    --detect-frames 0 --device "$device" --detector-precision float16 --json >"$hg/bench-s3fd-fp16.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-s3fd-fp16.out" heygem_s3fd_fp16 || tail -n 20 "$hg/bench-s3fd-fp16.out"
  "$bench_binary" --detector-only retinaface --video "$wl/clip.mp4" --frames 64 --batch 16 \
    --device "$device" --json >"$hg/bench-retinaface-forward.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-retinaface-forward.out" heygem_retinaface_forward ||
    tail -n 20 "$hg/bench-retinaface-forward.out"
}
run_restore_timings() {  # issue 17: the GFPGAN forward (faces/s) and the whole item with --enhance
  local precision
  for precision in float32 float16; do
    "$bench_binary" --restorer-only --batch "${BENCH_RESTORER_BATCH:-8}" --repeats 10 --device "$device" \
      --restorer-precision "$precision" --json >"$hg/forward-gfpgan-$precision.out" 2>&1 &&
      "$python" "$bench/record.py" "$metrics" bench-json "$hg/forward-gfpgan-$precision.out" \
        "gfpgan_forward_b${BENCH_RESTORER_BATCH:-8}_$precision" || tail -n 20 "$hg/forward-gfpgan-$precision.out"
  done
  # the same item as heygem_bench_retinaface, with every face restored; floor_wall_s is the plain re-encode
  "$bench_binary" --audio "$wl/speech.wav" --video "$wl/clip.mp4" --device "$device" --precision "$gen_precision" \
    --restorer-precision "${BENCH_RESTORER_PRECISION:-float16}" --detector retinaface --enhance --json \
    >"$hg/bench-enhance.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/bench-enhance.out" heygem_bench_enhance ||
    { tail -n 20 "$hg/bench-enhance.out"; return 1; }
}
run_media_timings() {  # (c) decode and encode alone with heygem's media code, beside the floor
  "$bench_binary" --media-only --video "$wl/clip.mp4" >"$hg/media.out" 2>&1 &&
    "$python" "$bench/record.py" "$metrics" bench-json "$hg/media.out" heygem_media || { tail -n 20 "$hg/media.out"; return 1; }
}
run_forward_timings() {  # issue 2: single forwards, Wav2Lip batch 128 in each precision
  local precision
  for precision in float32 float16 bfloat16; do
    "$bench_binary" --generator-only --batch 128 --repeats 20 --device "$device" --precision "$precision" \
      >"$hg/forward-wav2lip-$precision.out" 2>&1 &&
      "$python" "$bench/record.py" "$metrics" bench-json "$hg/forward-wav2lip-$precision.out" "wav2lip_forward_b128_$precision" ||
      tail -n 20 "$hg/forward-wav2lip-$precision.out"
  done
}

# daemon_session N PHASE_SPEC...: starts heygemd, records start -> ready, runs the phases (each spec
# is one string "NAME LIMIT MIN FUNCTION ARGS...", word-split), stops heygemd with SIGTERM.
daemon_session() {
  local session=$1 spec start
  shift
  start=$(bench_now)
  DAEMON_LOG=$hg/heygemd-$session.log
  "$heygemd" --config "$hg/heygemd.yaml" >"$DAEMON_LOG" 2>&1 &
  daemon_pid=$!
  READY_SUFFIX=$([[ $session == 1 ]] || echo "_$session")
  if phase "heygemd-ready$READY_SUFFIX" 150 20 wait_ready "$start"; then
    for spec in "$@"; do
      wanted "${spec%% *}" || continue  # BENCH_SKIP names these phases too
      # shellcheck disable=SC2086
      phase $spec
    done
  fi
  kill -TERM "$daemon_pid" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$daemon_pid" 2>/dev/null
  daemon_pid=""
  tail -n 40 "$DAEMON_LOG" | sed "s/^/[heygemd $session] /" >>"$BENCH_LOG"
  cp "$DAEMON_LOG" "$OUT/" 2>/dev/null
}
reference() {  # WORK PREFIX CLIP AUDIO [BOX...]
  local dir=$1 prefix=$2 clip=$3 audio=$4
  shift 4
  BENCH_METRICS=$metrics S3FD_WEIGHTS=$weights/s3fd.pth PYTHON=$python \
    "$bench/run-reference.sh" "$dir" "$prefix" "$clip" "$audio" "$weights/wav2lip_hashinit.pth" "$@"
}
s3fd_forward() {
  local out=$work/ref-s3fd-forward.json
  "$python" "$bench/ref_s3fd_forward.py" --peer "$PEER" --weights "$weights/s3fd.pth" \
    --clip "$wl/clip.mp4" --frames 64 --batch 16 --device "$device" | tee "$out" || return 1
  "$python" "$bench/record.py" "$metrics" json "$out" ref_s3fd
}
skip_note() {  # NAME NOTE
  local now
  now=$(bench_now)
  record_phase "$1" skipped 0 "$now" "$now" "$2"
}
have_heygem=0
[[ -n $heygemd && -n $heygemctl && -f $wl/clip.mp4 ]] && wanted heygem && have_heygem=1
have_peer=0
[[ -f $PEER/inference.py && -f $weights/wav2lip_hashinit.pth && -f $wl/clip.mp4 ]] && have_peer=1

# In order of importance, since the budget may not fit everything: the goal numbers (b), (d), (f)
# first, then detection (g) and the per-stage numbers (c); the GPU runs one thing at a time.
if ((have_heygem)); then
  write_daemon_config
  gpu_memory_metric gpu_baseline_mib "before heygemd starts"
  daemon_session 1 "heygem-latency 120 20 latency_jobs" "heygem-box 120 20 long_job heygem_box --box $box_csv" \
    "heygem-retinaface 120 20 long_job heygem_retinaface" \
    "heygem-retinaface-cached 120 20 long_job heygem_retinaface_cached"
else
  skip_note heygem "needs heygemd ($([[ -n $heygemd ]] && echo built || echo missing)), heygemctl ($([[ -n $heygemctl ]] && echo built || echo missing)) and the workload"
fi
if ((have_peer)); then
  wanted reference-box && phase reference-box 200 60 reference "$work/ref-box" ref_box "$wl/clip.mp4" "$wl/speech.wav" "${box_args[@]}"
  wanted reference-s3fd-forward && phase reference-s3fd-forward 90 20 s3fd_forward
else
  skip_note reference "needs the reference in $PEER ($([[ -f $PEER/inference.py ]] && echo present || echo "missing: run scripts/bench/fetch-reference.sh before the device call")), the peer weights (peer-weights phase) and the workload"
fi
# Issue 15: four jobs at once against four re-encodes at once (scripts/gpu/throughput.sh, its own
# heygemd with the default max_concurrent_jobs; table in $OUT/throughput.md).
run_throughput() {
  WORKLOAD=$wl BUILD=$build OUT=$OUT JOBS_AT_ONCE=${BENCH_JOBS_AT_ONCE:-4} MODES=${BENCH_THROUGHPUT_MODES:-box retinaface} \
    GEN_PRECISION=$gen_precision "$repo/scripts/gpu/throughput.sh"
}
((have_heygem)) && wanted throughput && phase throughput 240 60 run_throughput
if ((have_heygem)) && [[ -f $weights/s3fd.pth ]] && wanted heygem-s3fd; then
  extra=()  # the float32 generator only when time is left for the rest
  wanted heygem-fp32 && (( $(bench_seconds_left) > ${BENCH_FP32_MIN_LEFT_S:-300} )) && extra=("heygem-box-fp32 90 30 fp32_job")
  daemon_session 2 "heygem-s3fd 100 30 s3fd_job" "${extra[@]}"
fi
[[ -n $bench_binary && -f $wl/clip.mp4 ]] && wanted media && phase media 60 10 run_media_timings
[[ -n $bench_binary ]] && wanted forward && phase forward 60 10 run_forward_timings
if [[ -n $bench_binary && -f $wl/clip.mp4 ]] && wanted heygem-bench; then
  phase heygem-bench 120 30 run_heygem_bench
else
  skip_note heygem-bench "no heygem-bench binary in $build (tests/bench) or no workload"
fi
[[ -n $bench_binary && -f $wl/clip.mp4 ]] && wanted restore && phase restore 150 30 run_restore_timings
# The reference's own detection on the short clip, last: hash-init S3FD finds thousands of candidate
# boxes per frame, which its per-candidate Python decode and numpy NMS handle very slowly.
((have_peer)) && wanted reference-s3fd &&
  phase reference-s3fd 90 30 reference "$work/ref-s3fd" ref_s3fd_short "$wl/short.mp4" "$wl/short.wav"

# ------------------------------------------------------------------------------------- results
[[ -n $sampler ]] && kill "$sampler" 2>/dev/null
sampler=""
"$python" "$bench/write_results.py" "$work" "$OUT" || echo "write_results failed" | tee -a "$BENCH_LOG"
cat "$OUT/results.md" 2>/dev/null
