#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, libraries coverage-instrumented) in their
# own build folder and runs each one, one at a time, from the seed corpus of tests/fuzz/corpus/.
#
#   scripts/fuzz.sh                 smoke pass: each target for 200k executions or 60 s
#   scripts/fuzz.sh --runs 1000000 --time 3600     a long pass (docs/hardening.md records one)
#   options: --targets "protocol config checkpoint"  --build-dir DIR  --keep-corpus DIR
#
# The checkpoint seeds are copied at run time from $HEYGEM_FIXTURES/checkpoints (default
# ../shared/fixtures). A crash stops with the input saved under the artifacts folder: fix the bug,
# then keep the input as tests/fuzz/regressions/<target>/<name> (the ordinary ctest replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

runs=200000
max_time=60
targets="protocol config checkpoint"
build_dir=${HEYGEM_FUZZ_BUILD_DIR:-build-fuzz}
keep_corpus=""
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --time) max_time=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --keep-corpus) keep_corpus=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

fixtures=${HEYGEM_FIXTURES:-$repo/../shared/fixtures}
sanitizers="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo}

mkdir -p "$build_dir"
CC=clang CXX=clang++ cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$sanitizers" -DCMAKE_CXX_FLAGS="$sanitizers" >"$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log" >&2; exit 1; }
build_targets=()
for t in $targets; do build_targets+=("fuzz_$t"); done
cmake --build "$build_dir" --target "${build_targets[@]}" -j "${HEYGEM_JOBS:-$(nproc)}"

work=$(mktemp -d "${TMPDIR:-/tmp}/heygem-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=${HEYGEM_FUZZ_ARTIFACTS:-$build_dir/artifacts}  # build_dir: absolute, or relative to the repo
mkdir -p "$artifacts"

# Bigger inputs only slow the search down; checkpoints need room for a zip with a few records.
max_len_of() {
  case $1 in
    config) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

seed_corpus() {
  local target=$1 corpus=$2
  mkdir -p "$corpus"
  cp -r "$repo/tests/fuzz/corpus/$target/." "$corpus/" 2>/dev/null || true
  cp -r "$repo/tests/fuzz/regressions/$target/." "$corpus/" 2>/dev/null || true
  if [[ $target == checkpoint ]]; then
    [[ -d $fixtures/checkpoints ]] || { echo "fuzz.sh: no checkpoint fixtures in $fixtures" >&2; exit 1; }
    find "$fixtures/checkpoints" -maxdepth 1 -type f ! -name '*.json' -exec cp {} "$corpus/" \;
  fi
}

# Leak checks stay on; libtorch's process-lifetime allocations are listed in lsan.supp.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$repo/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=$work/summary
printf '%-11s %12s %8s %10s %8s %s\n' target executions seconds exec/s corpus result >"$summary"
status=0
for target in $targets; do
  corpus=$work/corpus/$target
  seed_corpus "$target" "$corpus"
  log=$artifacts/$target.log
  echo "fuzz.sh: $target: up to $runs executions or $max_time s" >&2
  started=$(date +%s)
  result=ok
  # One process, one target at a time (the machine is shared): no -jobs/-workers.
  if ! "$build_dir/tests/fuzz/fuzz_$target" "$corpus" \
      -runs="$runs" -max_total_time="$max_time" -max_len="$(max_len_of "$target")" \
      -dict="$repo/tests/fuzz/$target.dict" -timeout=10 -rss_limit_mb=4096 \
      -artifact_prefix="$artifacts/$target-" -print_final_stats=1 >"$log" 2>&1; then
    result="CRASH (see $log; input under $artifacts/$target-*)"
    status=1
  fi
  elapsed=$(($(date +%s) - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus_size=$(find "$corpus" -type f | wc -l)
  printf '%-11s %12s %8s %10s %8s %s\n' "$target" "${executions:-?}" "$elapsed" "${per_second:-?}" \
    "$corpus_size" "$result" >>"$summary"
  if [[ -n $keep_corpus ]]; then
    mkdir -p "$keep_corpus/$target" && cp -r "$corpus/." "$keep_corpus/$target/"
  fi
  [[ $result == ok ]] || tail -40 "$log" >&2
done
cat "$summary"
exit "$status"
