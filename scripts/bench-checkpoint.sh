#!/usr/bin/env bash
# Times the native checkpoint reader on a ~145 MB Wav2Lip-shaped state dict, in legacy and zip
# format, against baselines measured in the same run: `cat FILE > /dev/null`, reading the bytes
# into memory in-process, and Python's torch.load.
#   scripts/bench-checkpoint.sh [REPEATS]
# Env: HEYGEM_BUILD_DIR (default build; the bench_checkpoint target is built there),
#      BENCH_CHECKPOINT_BIN (use this binary instead of building), PYTHON (default /usr/bin/python3,
#      needs torch), HEYGEM_FIXTURES (default ../shared/fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
python=${PYTHON:-/usr/bin/python3}
fixtures=${HEYGEM_FIXTURES:-../shared/fixtures}
keys="$fixtures/wav2lip/keys.json"
[[ -f $keys ]] || { echo "bench-checkpoint: $keys not found" >&2; exit 1; }

bench=${BENCH_CHECKPOINT_BIN:-}
if [[ -z $bench ]]; then
  build_dir=${HEYGEM_BUILD_DIR:-build}
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${HEYGEM_BUILD_TYPE:-RelWithDebInfo} >/dev/null
  cmake --build "$build_dir" --target bench_checkpoint -j "${HEYGEM_JOBS:-2}"
  bench="$build_dir/tests/bench/bench_checkpoint"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/heygem-bench-checkpoint.XXXXXX")
trap 'rm -rf "$work"' EXIT

# {"state_dict": {"module." + key: tensor}} shaped like Wav2Lip's checkpoint, values random.
"$python" - "$keys" "$work" <<'PY'
import collections, json, sys, torch
keys, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
state = collections.OrderedDict()
for entry in json.load(open(keys))["entries"]:
    dtype = getattr(torch, entry["dtype"])
    shape = entry["shape"]
    state["module." + entry["name"]] = (torch.zeros(shape, dtype=dtype) if not dtype.is_floating_point
                                        else torch.randn(shape, dtype=dtype))
checkpoint = {"state_dict": state, "global_step": 1, "global_epoch": 1}
torch.save(checkpoint, out + "/legacy.pth", _use_new_zipfile_serialization=False)
torch.save(checkpoint, out + "/zip.pth")
PY

field() { sed -E "s/.*$1=([-0-9.]+).*/\1/" <<<"$2"; }
min() { python3 -c 'import sys; print(min(map(float, sys.argv[1:])))' "$@"; }

# Every measurement is a fresh process: page faults on fresh memory dominate a 145 MB load, and a
# warm allocator (second load in one process) would hide them for one contender but not another.
printf '%-7s %7s %8s %8s %8s %8s %8s %9s %9s %9s %10s\n' \
  format MB cat_s read_s ours_s read_cpu ours_cpu torch_s ours/read ours/cat ours/torch
for format in legacy zip; do
  file="$work/$format.pth"
  cat "$file" > /dev/null  # page cache warm for everyone
  cats=() reads=() read_cpus=() loads=() load_cpus=() torches=()
  for ((i = 0; i < repeats; i++)); do
    cats+=("$( { TIMEFORMAT=%R; time cat "$file" > /dev/null; } 2>&1 )")
    line=$("$bench" read "$file")
    reads+=("$(field wall_s "$line")") read_cpus+=("$(field cpu_s "$line")")
    line=$("$bench" load "$file")
    loads+=("$(field wall_s "$line")") load_cpus+=("$(field cpu_s "$line")")
    ours_sum=$(field sum "$line")
    torch_line=$("$python" - "$file" <<'PY'
import sys, time, torch
torch.set_num_threads(1)
start = time.perf_counter()
state = torch.load(sys.argv[1], map_location="cpu")["state_dict"]
elapsed = time.perf_counter() - start
print(f"wall_s={elapsed:.4f} sum={sum(float(t.double().sum()) for t in state.values()):.6f}")
PY
)
    torches+=("$(field wall_s "$torch_line")")
    torch_sum=$(field sum "$torch_line")
  done
  if [[ $ours_sum != "$torch_sum" ]]; then
    echo "bench-checkpoint: $format: value sum differs from torch.load ($ours_sum vs $torch_sum)" >&2
    exit 1
  fi
  mb=$(python3 -c "import os, sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.1f}')" "$file")
  python3 - "$format" "$mb" "$(min "${cats[@]}")" "$(min "${reads[@]}")" "$(min "${loads[@]}")" \
    "$(min "${read_cpus[@]}")" "$(min "${load_cpus[@]}")" "$(min "${torches[@]}")" <<'PY'
import sys
fmt, mb = sys.argv[1], sys.argv[2]
cat, read, ours, read_cpu, ours_cpu, torch_s = map(float, sys.argv[3:])
ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "inf"
print(f"{fmt:<7} {mb:>7} {cat:8.3f} {read:8.3f} {ours:8.3f} {read_cpu:8.3f} {ours_cpu:8.3f} {torch_s:8.3f}"
      f" {ratio(ours, read):>9} {ratio(ours, cat):>9} {ratio(ours, torch_s):>10}")
PY
done
cat <<TEXT
Best of $repeats fresh processes each, page cache warm. cat_s: cat FILE > /dev/null. read_s/read_cpu:
the file read into one fresh buffer in-process (wall/CPU). ours_s/ours_cpu: load_state_dict (wall/CPU).
torch_s: torch.load(map_location="cpu"), 1 thread, timed inside a fresh interpreter. The float64 sum
of all values matched torch.load's for both formats.
TEXT
