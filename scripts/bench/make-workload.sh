#!/usr/bin/env bash
# Makes the benchmark workload, reproducibly, from the GRID clips of the shared folder:
#   clip.mp4         1280x720, 25 fps, SECONDS long: the GRID clips in a fixed order, each scaled to
#                    720 px high and padded to 1280x720, concatenated and looped; x264 + AAC.
#   speech.wav       SECONDS of speech, 16 kHz mono s16: the same clips' audio in another order.
#   short.mp4, short.wav  the first SHORT_SECONDS of both (latency jobs).
#   workload.json    geometry, files, and the fixed face box in 720p coordinates (top, bottom, left,
#                    right), mapped from the fixture box of shared/fixtures/wav2lip (the first clip).
# Usage: make-workload.sh OUT_DIR [SECONDS] [SHORT_SECONDS]
# Env: HEYGEM_SHARED (default <repo>/../shared), HEYGEM_FIXTURES (default $HEYGEM_SHARED/fixtures),
#      FFMPEG (default ffmpeg), PYTHON (default python3; stdlib only).
set -euo pipefail

out=${1:?usage: make-workload.sh OUT_DIR [SECONDS] [SHORT_SECONDS]}
seconds=${2:-60}
short_seconds=${3:-3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${HEYGEM_SHARED:-$repo/../shared}
fixtures=${HEYGEM_FIXTURES:-$shared/fixtures}
ffmpeg=${FFMPEG:-ffmpeg}
python=${PYTHON:-python3}
width=1280 height=720 fps=25

die() { echo "make-workload: $*" >&2; exit 1; }
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || die "SECONDS must be a positive integer, got '$seconds'"
[[ $short_seconds =~ ^[0-9]+$ && $short_seconds -gt 0 && $short_seconds -le $seconds ]] ||
  die "SHORT_SECONDS must be a positive integer <= SECONDS, got '$short_seconds'"
manifest=$fixtures/wav2lip/manifest.json
[[ -f $manifest ]] || die "$manifest: missing (set HEYGEM_FIXTURES)"
command -v "$ffmpeg" >/dev/null || die "ffmpeg program '$ffmpeg' not found (set FFMPEG)"

# The fixture's clip comes first, so the fixed box fits the face at the start of every loop.
first_clip=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["meta"]["clip"])' "$manifest")
mapfile -t clips < <(cd "$shared/media/grid" 2>/dev/null && ls -1 -- *.mpg | sort)
(( ${#clips[@]} > 0 )) || die "$shared/media/grid: no GRID clips (*.mpg) (set HEYGEM_SHARED)"
[[ " ${clips[*]} " == *" $first_clip.mpg "* ]] || die "$shared/media/grid/$first_clip.mpg: missing (fixture clip)"
ordered=("$first_clip.mpg")
for c in "${clips[@]}"; do [[ $c == "$first_clip.mpg" ]] || ordered+=("$c"); done

clip_seconds=3  # every GRID clip is 3 s at 25 fps
segments=$(( (seconds + clip_seconds - 1) / clip_seconds ))
mkdir -p "$out"

# One filter graph: segment i = clip (i mod n), video scaled+padded, audio padded to the segment.
build_graph() {  # $1 = first clip index offset (audio uses another order), $2 = with video (1/0)
  local offset=$1 with_video=$2 graph="" labels="" i
  for ((i = 0; i < segments; i++)); do
    if ((with_video)); then
      graph+="[$i:v]scale=-2:$height:flags=bicubic,pad=$width:$height:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=$fps,format=yuv420p[v$i];"
      labels+="[v$i]"
    fi
    graph+="[$i:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,apad=whole_dur=$clip_seconds,atrim=end=$clip_seconds[a$i];"
    labels+="[a$i]"
  done
  echo "${graph}${labels}concat=n=$segments:v=$with_video:a=1"
}
inputs_for() {  # $1 = offset into the clip order
  local i n=${#ordered[@]}
  for ((i = 0; i < segments; i++)); do printf '%s\n' -i "$shared/media/grid/${ordered[$(( (i + $1) % n ))]}"; done
}

mapfile -t video_inputs < <(inputs_for 0)
"$ffmpeg" -hide_banner -loglevel error -y "${video_inputs[@]}" \
  -filter_complex "$(build_graph 0 1)[v][a]" -map '[v]' -map '[a]' -t "$seconds" \
  -c:v libx264 -preset veryfast -crf 18 -g 50 -threads 0 -c:a aac -b:a 128k \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 "$out/clip.mp4"

# The speech track starts halfway through the clip order, so it is never the clip's own audio.
mapfile -t audio_inputs < <(inputs_for $(( ${#ordered[@]} / 2 )))
"$ffmpeg" -hide_banner -loglevel error -y "${audio_inputs[@]}" \
  -filter_complex "$(build_graph $(( ${#ordered[@]} / 2 )) 0)[a]" -map '[a]' -t "$seconds" \
  -ac 1 -ar 16000 -c:a pcm_s16le -fflags +bitexact -flags:a +bitexact -map_metadata -1 "$out/speech.wav"

# Re-encoded rather than copied, so the cut is exact (a copy stops at a packet boundary).
"$ffmpeg" -hide_banner -loglevel error -y -i "$out/clip.mp4" -t "$short_seconds" \
  -c:v libx264 -preset veryfast -crf 18 -g 50 -c:a aac -b:a 128k \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 "$out/short.mp4"
"$ffmpeg" -hide_banner -loglevel error -y -i "$out/speech.wav" -t "$short_seconds" -c:a pcm_s16le \
  -fflags +bitexact -flags:a +bitexact -map_metadata -1 "$out/short.wav"

"$python" - "$manifest" "$out" "$seconds" "$short_seconds" "$width" "$height" "$fps" "${ordered[@]}" <<'EOF'
import json, sys
manifest, out, seconds, short_seconds, width, height, fps = sys.argv[1:8]
order = sys.argv[8:]
width, height = int(width), int(height)
top, bottom, left, right = json.load(open(manifest))["meta"]["box_top_bottom_left_right"]
src_w, src_h = 360, 288                      # GRID geometry
scale = height / src_h
pad_x = (width - round(src_w * scale / 2) * 2) // 2  # scale=-2 rounds the width to even
box = [round(top * scale), round(bottom * scale), round(left * scale) + pad_x, round(right * scale) + pad_x]
json.dump({
    "clip": "clip.mp4", "audio": "speech.wav", "short_clip": "short.mp4", "short_audio": "short.wav",
    "width": width, "height": height, "fps": int(fps),
    "seconds": int(seconds), "frames": int(seconds) * int(fps), "short_seconds": int(short_seconds),
    "box_top_bottom_left_right": box,
    "source_box_top_bottom_left_right": [top, bottom, left, right],
    "clip_order": order,
    "x264": {"preset": "veryfast", "crf": 18, "note": "how the workload clip itself is encoded"},
}, open(f"{out}/workload.json", "w"), indent=1)
print(f"workload in {out}: {seconds} s {width}x{height}@{fps}, box (t,b,l,r) {box}")
EOF
