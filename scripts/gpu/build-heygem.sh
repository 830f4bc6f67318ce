#!/usr/bin/env bash
# Configures and builds heygem on the GPU machine against its python3's CUDA libtorch and the
# FFmpeg that build-ffmpeg.sh installed into $PREFIX (header-only debs unpacked under $PREFIX/root).
# Usage: build-heygem.sh [BUILD_DIR] [--configure-only]
# Env: PREFIX (/opt/heygem-deps), PYTHON (python3), JOBS (nproc), CMAKE_BUILD_TYPE (Release),
#      HEYGEM_TORCH_CONFIG=auto|real|manual: `real` uses torch's own TorchConfig.cmake (it needs the
#      CUDA toolkit), `manual` a minimal config written here from the python package's libraries
#      and headers; `auto` tries real, then manual.
set -euo pipefail

build=${1:-build-gpu}
configure_only=${2:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=${PREFIX:-/opt/heygem-deps}
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}
mode=${HEYGEM_TORCH_CONFIG:-auto}
cd "$repo"

torch_info=$("$python" - <<'EOF'
import os, torch
print(torch.utils.cmake_prefix_path)
print(os.path.dirname(torch.__file__))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.__version__, torch.version.cuda or "cpu")
EOF
)
{ read -r torch_cmake; read -r torch_root; read -r cxx11_abi; read -r torch_version; } <<<"$torch_info"
echo "torch $torch_version at $torch_root (C++11 ABI $cxx11_abi)"

# CUDA toolkit: torch's CMake config looks for nvcc / CUDAToolkit.
for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [[ -n $cuda && -x $cuda/bin/nvcc ]]; then export CUDA_HOME=$cuda CUDACXX=$cuda/bin/nvcc PATH="$cuda/bin:$PATH"; break; fi
done
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

# A minimal Torch config: the python package's libraries and headers, torch_cuda linked even though
# nothing references it directly (its static initialisers register the CUDA backend).
write_manual_config() {
  local dir=$1 cuda_includes="" d
  for d in "${CUDA_HOME:-/usr/local/cuda}/include" "$torch_root"/../nvidia/*/include "$torch_root"/../nvidia/cu*/include; do
    [[ -f $d/cuda_runtime_api.h ]] && cuda_includes+="$d;"
  done
  local libs="\${_torch_root}/lib/libtorch.so;\${_torch_root}/lib/libtorch_cpu.so;\${_torch_root}/lib/libc10.so;"
  [[ -f $torch_root/lib/libtorch_cuda.so ]] &&
    libs+="-Wl,--no-as-needed;\${_torch_root}/lib/libtorch_cuda.so;\${_torch_root}/lib/libc10_cuda.so;-Wl,--as-needed;"
  mkdir -p "$dir"
  cat >"$dir/TorchConfig.cmake" <<EOF
# Written by scripts/gpu/build-heygem.sh (manual mode) for $torch_version.
set(_torch_root "$torch_root")
set(TORCH_INCLUDE_DIRS "\${_torch_root}/include;\${_torch_root}/include/torch/csrc/api/include;$cuda_includes")
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=$cxx11_abi")
if(NOT TARGET torch)
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
    INTERFACE_COMPILE_OPTIONS "\${TORCH_CXX_FLAGS}"
    INTERFACE_LINK_LIBRARIES "$libs-Wl,-rpath,\${_torch_root}/lib")
endif()
set(TORCH_LIBRARIES torch)
set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
EOF
}

configure() {  # $1 = Torch_DIR
  cmake -S . -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" \
    -DHEYGEM_WITH_SYSTEMD=OFF \
    -DCMAKE_PREFIX_PATH="$PREFIX;$PREFIX/root/usr" \
    -DTorch_DIR="$1" \
    -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_INCLUDE_PATH="$PREFIX/root/usr/include"
}

case $mode in
  real) configure "$torch_cmake/Torch" ;;
  manual) write_manual_config "$PWD/$build-torch"; configure "$PWD/$build-torch" ;;
  auto)
    if ! configure "$torch_cmake/Torch"; then
      echo "build-heygem: torch's own CMake config failed; retrying with the manual Torch config" >&2
      rm -f "$build/CMakeCache.txt"
      write_manual_config "$PWD/$build-torch"
      configure "$PWD/$build-torch"
    fi ;;
  *) echo "build-heygem: HEYGEM_TORCH_CONFIG must be auto, real or manual, got '$mode'" >&2; exit 2 ;;
esac
[[ $configure_only == --configure-only ]] && exit 0

# What the benchmark needs: the daemon, the CLI, heygem-bench and every parity test binary (the unit
# test binaries are left out to save time). BUILD_TARGETS=all builds everything.
targets=${BUILD_TARGETS:-}
if [[ -z $targets ]]; then
  targets=$(ninja -C "$build" -t targets all 2>/dev/null |
    grep -v "^cmake_" | sed -n -E 's/^(heygemd|heygemctl|heygem-bench|[A-Za-z0-9_]*parity[A-Za-z0-9_]*): phony$/\1/p' | sort -u | tr '\n' ' ')
fi
[[ -n $targets ]] || targets=all
echo "building: $targets"
# Keep going past a failing target, so everything that does compile is there for the benchmark.
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" --target $targets -- -k 0
