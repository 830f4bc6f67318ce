# Phase runner and result records for scripts/gpu-bench.sh (sourced, bash).
#
# Every phase runs in its own process group with a time limit cut to the run's deadline, so one
# hanging or failing phase costs its own time only; its output goes to $BENCH_WORK/logs/NAME.log and
# a tail of it to $BENCH_LOG. Records are NDJSON lines that scripts/bench/write_results.py turns into
# results.json and results.md:
#   phases.ndjson   {"phase", "status": ok|failed|timeout|skipped, "rc", "start", "end", "seconds", "note"}
#   metrics.ndjson  {"key", "value", "unit", "note"}
# Needs: BENCH_WORK, BENCH_LOG, BENCH_DEADLINE (epoch seconds) set by bench_init.

bench_init() {  # WORK_DIR LOG_FILE BUDGET_SECONDS
  BENCH_WORK=$1 BENCH_LOG=$2
  BENCH_DEADLINE=$(( $(date +%s) + $3 ))
  BENCH_RESERVE_S=${BENCH_RESERVE_S:-15}  # kept back for writing the results
  mkdir -p "$BENCH_WORK/logs" "$(dirname "$BENCH_LOG")"
  : >"$BENCH_WORK/phases.ndjson"
  : >"$BENCH_WORK/metrics.ndjson"
  : >"$BENCH_LOG"
  declare -gA BENCH_PID=() BENCH_START=() BENCH_TIMEOUT_FLAG=() BENCH_WATCHDOG=()
  set -m  # background jobs get their own process group, so a timeout kills a phase's children too
}

bench_now() { date +%s.%N; }
bench_seconds_left() { echo $(( BENCH_DEADLINE - BENCH_RESERVE_S - $(date +%s) )); }

json_str() {  # a JSON string literal
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')
  printf '"%s"' "$s"
}

json_value() {  # a number stays a number, anything else becomes a string
  if [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else json_str "$1"; fi
}

# metric KEY VALUE [UNIT] [NOTE]
metric() {
  printf '{"key":%s,"value":%s,"unit":%s,"note":%s}\n' "$(json_str "$1")" "$(json_value "$2")" \
    "$(json_str "${3:-}")" "$(json_str "${4:-}")" >>"${BENCH_METRICS:-$BENCH_WORK/metrics.ndjson}"
}

record_phase() {  # NAME STATUS RC START END NOTE
  local seconds
  seconds=$(awk -v a="$4" -v b="$5" 'BEGIN { printf "%.3f", b - a }')
  printf '{"phase":%s,"status":%s,"rc":%s,"start":%s,"end":%s,"seconds":%s,"note":%s}\n' \
    "$(json_str "$1")" "$(json_str "$2")" "$3" "$4" "$5" "$seconds" "$(json_str "${6:-}")" >>"$BENCH_WORK/phases.ndjson"
  printf '=== phase %s: %s (rc %s, %s s) %s\n' "$1" "$2" "$3" "$seconds" "${6:-}" | tee -a "$BENCH_LOG"
}

# phase_start NAME TIMEOUT_S MIN_S CMD...: starts CMD in the background unless fewer than MIN_S
# seconds are left before the deadline (then the phase is recorded as skipped and 1 is returned).
phase_start() {
  local name=$1 limit=$2 min=$3 left now
  shift 3
  left=$(bench_seconds_left)
  if (( left < min )); then
    now=$(bench_now)
    record_phase "$name" skipped 0 "$now" "$now" "not enough time left (${left}s < ${min}s)"
    return 1
  fi
  (( limit > left )) && limit=$left
  BENCH_START[$name]=$(bench_now)
  BENCH_TIMEOUT_FLAG[$name]=$BENCH_WORK/logs/$name.timeout
  rm -f "${BENCH_TIMEOUT_FLAG[$name]}"
  ( "$@" ) >"$BENCH_WORK/logs/$name.log" 2>&1 &
  BENCH_PID[$name]=$!
  local pid=$! flag=${BENCH_TIMEOUT_FLAG[$name]}
  ( sleep "$limit"; : >"$flag"; kill -TERM -- "-$pid" 2>/dev/null; sleep 5; kill -KILL -- "-$pid" 2>/dev/null ) \
    >/dev/null 2>&1 &
  BENCH_WATCHDOG[$name]=$!
  echo "--- phase $name started (limit ${limit}s)" | tee -a "$BENCH_LOG"
}

# phase_wait NAME [TAIL_LINES]: waits for a started phase and records its outcome.
phase_wait() {
  local name=$1 tail_lines=${2:-40} rc=0 status note=""
  [[ -n ${BENCH_PID[$name]:-} ]] || return 1
  wait "${BENCH_PID[$name]}" || rc=$?
  kill -TERM -- "-${BENCH_WATCHDOG[$name]}" 2>/dev/null || true
  wait "${BENCH_WATCHDOG[$name]}" 2>/dev/null || true
  if [[ -e ${BENCH_TIMEOUT_FLAG[$name]} ]]; then
    status=timeout note="killed at its time limit"
  elif (( rc == 0 )); then
    status=ok
  else
    status=failed
    tail_lines=$(( tail_lines * 3 ))
    note=$(grep -v '^\s*$' "$BENCH_WORK/logs/$name.log" | tail -1 | cut -c1-300)
  fi
  record_phase "$name" "$status" "$rc" "${BENCH_START[$name]}" "$(bench_now)" "$note"
  tail -n "$tail_lines" "$BENCH_WORK/logs/$name.log" | sed "s/^/[$name] /" >>"$BENCH_LOG"
  unset "BENCH_PID[$name]" "BENCH_WATCHDOG[$name]"
  [[ $status == ok ]]
}

# phase NAME TIMEOUT_S MIN_S CMD...: runs CMD to completion (or its limit); returns 0 when it succeeded.
phase() {
  local name=$1
  phase_start "$@" || return 1
  phase_wait "$name"
}

phase_status() {  # the recorded status of NAME ("" if it never ran)
  awk -v n="$1" -F'"status":"' 'index($0, "\"phase\":\"" n "\"") { split($2, a, "\""); s = a[1] } END { print s }' \
    "$BENCH_WORK/phases.ndjson"
}

bench_kill_all() {  # ends every phase still running (their process groups) and their watchdogs
  local name
  for name in "${!BENCH_PID[@]}"; do kill -TERM -- "-${BENCH_PID[$name]}" 2>/dev/null || true; done
  for name in "${!BENCH_WATCHDOG[@]}"; do kill -TERM -- "-${BENCH_WATCHDOG[$name]}" 2>/dev/null || true; done
}
