#!/usr/bin/env bash
# Generates the hostile media corpus (ffmpeg + dd) into OUT_DIR, with OUT_DIR/cases.tsv describing
# each case for the tests (tests/hardening): file, role, expectation, cause.
#
#   scripts/hostile-media.sh OUT_DIR
#
#   role         audio | video: the part of a job the file is given as (the other part is a good
#                input: good_audio.wav / good_video.mp4, also written here)
#   expectation  fail: the job must fail with a message matching `cause` (an extended regex,
#                case-insensitive); either: success is sensible too, but a failure must still be
#                clean (an error naming the input)
# Everything is small (under 1 MB in all) and takes a few seconds to make.
set -euo pipefail
out=${1:?usage: hostile-media.sh OUT_DIR}
mkdir -p "$out"
cd "$out"

ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
# Writes the bytes given as hex pairs at a byte offset, in place.
patch_bytes() {
  local file=$1 offset=$2 hex=$3
  printf "$(sed 's/\(..\)/\\x\1/g' <<<"$hex")" | dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}
# A y4m file whose stream header is replaced by `header` (frames stay as they were).
y4m_with_header() {
  local source=$1 target=$2 header=$3
  { printf '%s\n' "$header"; tail -c +"$(($(head -n1 "$source" | wc -c) + 1))" "$source"; } >"$target"
}

cases=cases.tsv
printf 'file\trole\texpectation\tcause\n' >"$cases"
add_case() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$cases"; }

# The good halves: a 1 s 96x96 clip with sound, and 1 s of speech-band audio.
ff -f lavfi -i testsrc2=size=96x96:rate=25:duration=1 -f lavfi -i sine=frequency=300:duration=1 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest good_video.mp4
ff -f lavfi -i sine=frequency=440:sample_rate=16000:duration=1 good_audio.wav

: >zero_byte.mp4
add_case zero_byte.mp4 video fail 'empty|zero|no data'

# moov at the end (no faststart), cut before it.
ff -f lavfi -i testsrc2=size=96x96:rate=25:duration=2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p long.mp4
head -c "$(($(stat -c %s long.mp4) / 2))" long.mp4 >truncated_moov.mp4
rm long.mp4
add_case truncated_moov.mp4 video fail 'moov|invalid|not media|cannot (open|read)|unreadable'

head -c 65536 /dev/urandom >random_bytes.mp4
add_case random_bytes.mp4 video fail 'invalid|not media|cannot (open|read)|unreadable|no video'

ff -f lavfi -i sine=frequency=440:duration=1 -c:a aac audio_only.m4a
add_case audio_only.m4a video fail 'no video'

ff -f lavfi -i testsrc2=size=96x96:rate=25:duration=1 -an -c:v libx264 -preset ultrafast -pix_fmt yuv420p silent_video.mp4
add_case silent_video.mp4 audio fail 'no audio'

# (the color source refuses 1x1 itself: scale a 2x2 one down)
ff -f lavfi -i color=c=gray:s=2x2:r=25:d=1 -vf scale=1:1 -c:v ffv1 -pix_fmt yuv444p one_by_one.mkv
add_case one_by_one.mkv video either '1x1|too small|dimension|face|box'

# 64x64 frames under y4m headers that lie: 16k x 16k, 0 fps, an absurd time base.
ff -f lavfi -i color=c=gray:size=64x64:rate=25:duration=0.2 -pix_fmt yuv420p -strict -1 small.y4m
y4m_with_header small.y4m huge_dims.y4m 'YUV4MPEG2 W16384 H16384 F25:1 Ip A1:1 C420jpeg'
add_case huge_dims.y4m video fail '16384|dimension|too (large|big)|limit'
y4m_with_header small.y4m zero_fps.y4m 'YUV4MPEG2 W64 H64 F0:1 Ip A1:1 C420jpeg'
# FFmpeg's y4m reader takes F0:1 as 25 fps (what players show too), so rendering at 25 fps is sensible
add_case zero_fps.y4m video either 'frame rate|fps|time base|invalid|not media|cannot (open|read)'
y4m_with_header small.y4m absurd_timebase.y4m 'YUV4MPEG2 W64 H64 F1000000:1 Ip A1:1 C420jpeg'
add_case absurd_timebase.y4m video either 'frame rate|fps|time base|limit'
rm small.y4m

# 10 hours of silence, really (FFmpeg trusts no size field past the file's end): 8-bit mono PCM at
# 8 samples per second, so 36000 s take 288,000 bytes.
le32() { printf "$(printf '%08x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/\\x\4\\x\3\\x\2\\x\1/')"; }
rate=8
data_bytes=$((rate * 36000))
{
  printf 'RIFF'; le32 $((36 + data_bytes)); printf 'WAVEfmt '; le32 16
  printf '\x01\x00\x01\x00'; le32 "$rate"; le32 "$rate"; printf '\x01\x00\x08\x00'
  printf 'data'; le32 "$data_bytes"
  head -c "$data_bytes" /dev/zero | tr '\0' '\200'
} >ten_hours.wav
add_case ten_hours.wav audio fail 'duration|long|limit|hour|3600'

# MPEG-1 with its middle third overwritten by random bytes.
ff -f lavfi -i testsrc2=size=96x96:rate=25:duration=2 -f lavfi -i sine=duration=2 \
  -c:v mpeg1video -q:v 5 -c:a mp2 -f mpeg corrupt_middle.mpg
size=$(stat -c %s corrupt_middle.mpg)
dd if=/dev/urandom of=corrupt_middle.mpg bs=1 seek="$((size / 3))" count="$((size / 3))" conv=notrunc status=none
add_case corrupt_middle.mpg video either 'corrupt|decode|invalid'

# A 1x1 PNG whose IHDR declares 100000 x 100000 (PNG CRCs are not checked by FFmpeg's decoder).
ff -f lavfi -i color=c=red:s=2x2 -vf scale=1:1 -frames:v 1 huge.png
patch_bytes huge.png 16 000186a0000186a0
add_case huge.png video fail '100000|dimension|too (large|big)|limit|invalid|decode'

# An MP3 whose first frame headers are zeroed.
ff -f lavfi -i sine=frequency=440:duration=1 -c:a libmp3lame -b:a 32k -id3v2_version 0 -write_xing 0 broken_header.mp3
dd if=/dev/zero of=broken_header.mp3 bs=1 count=512 conv=notrunc status=none
add_case broken_header.mp3 audio either 'mp3|header|invalid|decode|no audio|not media'

echo "hostile-media: $(($(wc -l <"$cases") - 1)) cases in $out" >&2
