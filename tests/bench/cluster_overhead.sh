#!/usr/bin/env bash
# Cluster overhead (issue 18): the same short job through a local submit and through
# `heygemctl --cluster` on one warm worker, alternately; prints the medians of the wall times and of
# the time around the render (wall less the daemon's render), and the cluster's overhead.
#   tests/bench/cluster_overhead.sh [BUILD_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} runs=${2:-7}
heygemd=$PWD/$build/daemon/heygemd heygemctl=$PWD/$build/cli/heygemctl
shared=$(cd ../shared && pwd)
work=$(mktemp -d) && trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
media=$work/media && mkdir -p "$media/out"
clip=$(python3 -c "import json;m=json.load(open('$shared/fixtures/e2e/manifest.json'))['meta'];print(m['video_clip'],m['audio_clips'][0],','.join(map(str,m['box_top_bottom_left_right'])))")
read -r video_clip audio_clip box <<<"$clip"
ffmpeg -loglevel error -i "$shared/media/grid/$audio_clip.mpg" -t 1 -vn -ac 1 -ar 16000 "$media/a.wav"
ffmpeg -loglevel error -i "$shared/media/grid/$video_clip.mpg" -t 1 -an -c:v libx264 -preset ultrafast -crf 10 "$media/v.mp4"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --dir "$work" --appendonly yes --save "" >"$work/redis.log" &
cat >"$work/heygemd.yaml" <<YAML
socket: {path: $work/heygemd.sock}
state_dir: $work/state
models:
  directory: $shared/models
  default_detector: ""
  entries: [{name: wav2lip, kind: wav2lip}]
cluster: {address: "redis://127.0.0.1:$port", consumer: bench, media_roots: [$media]}
YAML
"$heygemd" --config "$work/heygemd.yaml" >"$work/heygemd.log" 2>&1 &
# "serving" once the models are warm and the worker reads the stream
until "$heygemctl" --cluster "redis://127.0.0.1:$port" --json workers 2>/dev/null | grep -q '"serving"'; do sleep 0.5; done
options=(--box "$box" --crf 35 --preset ultrafast)
now() { date +%s%N; }
# The render itself varies by hundreds of ms between runs on a busy box: each run's overhead is its
# wall time less the render's (the daemon's job from start to finish, the same code on both paths),
# so what is compared is what lies around the render: submit, intake, events, publish, the client.
render_ms() {
  "$heygemctl" --socket "$work/heygemd.sock" --json list --all | python3 -c '
import json, sys
jobs = [j for line in sys.stdin for j in json.loads(line).get("jobs", [])]
last = max(jobs, key=lambda j: j["submitted_at_ms"])
print(last["finished_at_ms"] - last["started_at_ms"])'
}
timed() {  # wall-ms render-ms
  local start end
  start=$(now) && "$@" >/dev/null && end=$(now)
  echo "$(((end - start) / 1000000)) $(render_ms)"
}
local_wall=() local_over=() cluster_wall=() cluster_over=()
for ((i = 0; i < runs; i++)); do
  read -r wall render < <(timed "$heygemctl" --socket "$work/heygemd.sock" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/l$i.mp4" "${options[@]}")
  local_wall+=("$wall") local_over+=("$((wall - render))")
  read -r wall render < <(timed "$heygemctl" --cluster "redis://127.0.0.1:$port" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/c$i.mp4" "${options[@]}")
  cluster_wall+=("$wall") cluster_over+=("$((wall - render))")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
lw=$(median "${local_wall[@]}") cw=$(median "${cluster_wall[@]}")
lo=$(median "${local_over[@]}") co=$(median "${cluster_over[@]}")
echo "local submit:   median ${lw} ms over $runs (${local_wall[*]}); around the render: median ${lo} ms (${local_over[*]})"
echo "cluster submit: median ${cw} ms over $runs (${cluster_wall[*]}); around the render: median ${co} ms (${cluster_over[*]})"
echo "cluster overhead: $(echo "$co - $lo" | bc) ms around the render (wall medians differ by $(echo "$cw - $lw" | bc) ms)"
# A job that waits behind a running one (a local job, its result kept in the spool, started a second
# before): from the end of that one to its own start (the daemon's times). Locally it is queued in
# the scheduler already; through the cluster the worker reads its entry once the slot frees
# (woken by the scheduler; then XAUTOCLAIM or XREADGROUP, begin, open, spool).
gap_ms() {
  "$heygemctl" --socket "$work/heygemd.sock" --json list --all | python3 -c '
import json, sys
jobs = sorted((j for line in sys.stdin for j in json.loads(line).get("jobs", [])), key=lambda j: j["submitted_at_ms"])
print(jobs[-1]["started_at_ms"] - jobs[-2]["finished_at_ms"])'
}
local_gap=() cluster_gap=()
for ((i = 0; i < runs; i++)); do
  "$heygemctl" --socket "$work/heygemd.sock" submit --detach -a "$media/a.wav" "$media/v.mp4" "${options[@]}" >/dev/null
  sleep 1
  "$heygemctl" --socket "$work/heygemd.sock" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/lb$i.mp4" "${options[@]}" >/dev/null
  local_gap+=("$(gap_ms)")
  "$heygemctl" --socket "$work/heygemd.sock" submit --detach -a "$media/a.wav" "$media/v.mp4" "${options[@]}" >/dev/null
  sleep 1
  "$heygemctl" --cluster "redis://127.0.0.1:$port" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/cb$i.mp4" "${options[@]}" >/dev/null
  cluster_gap+=("$(gap_ms)")
done
lg=$(median "${local_gap[@]}") cg=$(median "${cluster_gap[@]}")
echo "queued behind a running job, its end to the next start: local median ${lg} ms (${local_gap[*]}), cluster median ${cg} ms (${cluster_gap[*]})"
