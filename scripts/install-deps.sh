#!/usr/bin/env bash
# Installs the Debian bookworm packages heygem builds, tests and runs with. Idempotent.
# --gpu: everything but Debian's CPU-only libtorch (the GPU build brings a CUDA one: scripts/setup.sh);
# the same names serve Ubuntu 24.04.
set -euo pipefail
gpu=false
case ${1:-} in
  --gpu) gpu=true ;;
  "") ;;
  *) echo "usage: scripts/install-deps.sh [--gpu]" >&2; exit 2 ;;
esac
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
  libyaml-cpp-dev libspdlog-dev libsystemd-dev systemd libboost-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev groff-base mandoc clang
  libfuse3-dev fuse3
  libhiredis-dev redis-server python3-redis
)
$gpu || packages+=(libtorch-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "heygem: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
