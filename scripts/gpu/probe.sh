#!/usr/bin/env bash
# One device call: what the GPU machine has, and whether our FFmpeg build works there.
set -uo pipefail
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch;print(torch.__version__, torch.utils.cmake_prefix_path, torch.cuda.get_device_name(0))'
cmake --version | head -1; ninja --version; g++ --version | head -1; nproc
for h in nlohmann/json.hpp CLI/CLI.hpp yaml-cpp/yaml.h spdlog/spdlog.h gtest/gtest.h boost/asio.hpp systemd/sd-daemon.h; do
  f=$(echo '#include <'$h'>' | g++ -x c++ -E - 2>/dev/null | grep -m1 -o "/[^\"]*$h"); echo "$h: ${f:-MISSING}"; done
ls /usr/lib/x86_64-linux-gnu/cmake | tr '\n' ' '; echo
time scripts/gpu/build-ffmpeg.sh .gpu
export LD_LIBRARY_PATH=/opt/heygem-deps/lib
/opt/heygem-deps/bin/ffmpeg -hide_banner -encoders | grep -E 'nvenc|x264'
/opt/heygem-deps/bin/ffmpeg -hide_banner -decoders | grep -E 'cuvid'
/opt/heygem-deps/bin/ffmpeg -hide_banner -f lavfi -i testsrc2=s=1280x720:r=25 -t 2 -c:v h264_nvenc -f null - 2>&1 | tail -4
/opt/heygem-deps/bin/ffmpeg -hide_banner -f lavfi -i testsrc2=s=1280x720:r=25 -t 2 -c:v libx264 -y /tmp/t.mp4 2>&1 | tail -1
/opt/heygem-deps/bin/ffmpeg -hide_banner -hwaccel cuda -i /tmp/t.mp4 -f null - 2>&1 | tail -2
