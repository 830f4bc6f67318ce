#!/usr/bin/env bash
# Cluster overhead (issue 18): the same short job through a local submit and through
# `heygemctl --cluster` on one warm worker, alternately; prints the medians and the difference.
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
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc; }
local_times=() cluster_times=()
for ((i = 0; i < runs; i++)); do
  local_times+=("$(seconds "$heygemctl" --socket "$work/heygemd.sock" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/l$i.mp4" "${options[@]}")")
  cluster_times+=("$(seconds "$heygemctl" --cluster "redis://127.0.0.1:$port" submit -a "$media/a.wav" "$media/v.mp4" -o "$media/out/c$i.mp4" "${options[@]}")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
l=$(median "${local_times[@]}") c=$(median "${cluster_times[@]}")
echo "local submit:   median ${l} s over $runs (${local_times[*]})"
echo "cluster submit: median ${c} s over $runs (${cluster_times[*]})"
echo "cluster overhead: $(echo "($c - $l) * 1000" | bc) ms (ratio $(echo "scale=3; $c / $l" | bc))"
