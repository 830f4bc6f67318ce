#!/usr/bin/env bash
# Builds and installs heygem: the CPU build against Debian's libtorch, or with --gpu the CUDA build
# against a CUDA libtorch (an installed PyTorch, or the libtorch archive) and the distribution's
# FFmpeg (5.1 or 6.x; NVDEC is loaded at run time). Prints what it found at the end.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/setup.sh [--gpu] [--prefix DIR] [--build-dir DIR] [--deps-prefix DIR]
                        [--no-deps] [--no-install] [--tests]

  --gpu             the CUDA build (default: the CPU build with Debian's libtorch-dev)
  --prefix DIR      install prefix (default /usr/local): DIR/sbin/heygemd, DIR/bin/heygemctl, units, man pages
  --build-dir DIR   build folder (default build-install, or build-gpu with --gpu)
  --deps-prefix DIR FFmpeg (DIR/lib/pkgconfig) and header-only packages unpacked under DIR/root/usr,
                    as scripts/gpu/build-ffmpeg.sh leaves them on a machine without network
  --no-deps         do not apt-get the build dependencies (scripts/install-deps.sh)
  --no-install      build only
  --tests           also build the test suites (cd BUILD && ctest)

Where the CUDA libtorch comes from (--gpu), first match wins:
  LIBTORCH=/path/to/libtorch   the archive from pytorch.org (cxx11 ABI), unpacked
  PYTHON=python3               that interpreter's installed torch (torch.utils.cmake_prefix_path)
Other environment: CUDA_HOME (the CUDA toolkit, optional), JOBS (parallel jobs, default nproc),
  BUILD_TARGETS (ninja targets, default all), HEYGEM_TORCH_CONFIG=auto|real|manual (torch's own
  TorchConfig.cmake needs the CUDA toolkit; manual writes a minimal one from the libraries; auto
  tries real, then manual), CMAKE_BUILD_TYPE (Release).
EOF
}

gpu=false prefix=/usr/local build="" deps_prefix="" deps=true install=true tests=false
while (($#)); do
  case $1 in
    --gpu) gpu=true ;;
    --prefix) prefix=${2:?--prefix needs a folder}; shift ;;
    --build-dir) build=${2:?--build-dir needs a folder}; shift ;;
    --deps-prefix) deps_prefix=${2:?--deps-prefix needs a folder}; shift ;;
    --no-deps) deps=false ;;
    --no-install) install=false ;;
    --tests) tests=true ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build=${build:-$($gpu && echo build-gpu || echo build-install)}
jobs=${JOBS:-$(nproc)}
say() { echo "setup.sh: $*" >&2; }
die() { echo "setup.sh: $*" >&2; exit 1; }

if $deps; then
  if $gpu; then scripts/install-deps.sh --gpu; else scripts/install-deps.sh; fi
fi

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-$($gpu && echo Release || echo RelWithDebInfo)}"
            -DHEYGEM_BUILD_TESTS="$($tests && echo ON || echo OFF)")
if [[ -n $deps_prefix ]]; then
  export PKG_CONFIG_PATH="$deps_prefix/lib/pkgconfig:$deps_prefix/root/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$deps_prefix/lib:$deps_prefix/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps_prefix;$deps_prefix/root/usr" -DCMAKE_INCLUDE_PATH="$deps_prefix/root/usr/include")
fi
pkg-config --exists libsystemd 2>/dev/null || [[ -f /usr/include/systemd/sd-daemon.h ]] || cmake_args+=(-DHEYGEM_WITH_SYSTEMD=OFF)

# FFmpeg: 5.1 (libavcodec 59) and 6.x (60) are the supported ones.
ffmpeg=$(pkg-config --modversion libavcodec 2>/dev/null) ||
  die "FFmpeg's development files are missing (libavcodec-dev, libavformat-dev, libswscale-dev, libswresample-dev): run scripts/install-deps.sh$($gpu && echo " --gpu"), or pass --deps-prefix"
case ${ffmpeg%%.*} in
  59 | 60) ;;
  *) say "warning: libavcodec $ffmpeg is neither FFmpeg 5.1 (59) nor 6.x (60); heygem is tested with those" ;;
esac

# ------------------------------------------------------------------------------ the CUDA libtorch
torch_summary="Debian libtorch-dev (CPU)"
if $gpu; then
  if [[ -n ${LIBTORCH:-} ]]; then
    [[ -f $LIBTORCH/share/cmake/Torch/TorchConfig.cmake ]] ||
      die "LIBTORCH=$LIBTORCH is not an unpacked libtorch archive (no share/cmake/Torch/TorchConfig.cmake)"
    [[ -f $LIBTORCH/lib/libtorch_cuda.so ]] ||
      die "LIBTORCH=$LIBTORCH is a CPU-only libtorch (no lib/libtorch_cuda.so): download a CUDA one from pytorch.org"
    torch_cmake=$LIBTORCH/share/cmake
    torch_root=$LIBTORCH
    torch_version=$(cat "$LIBTORCH/build-version" 2>/dev/null || echo "unknown version")
    # The archive comes in both ABIs; the one whose libc10 has __cxx11 symbols is the new ABI.
    if nm -D --defined-only "$LIBTORCH/lib/libc10.so" 2>/dev/null | grep -q __cxx11; then cxx11_abi=1; else cxx11_abi=0; fi
    torch_summary="libtorch $torch_version from LIBTORCH=$LIBTORCH"
  else
    python=${PYTHON:-python3}
    command -v "$python" >/dev/null || die "no $python: install PyTorch with CUDA for it, or set LIBTORCH=/path/to/libtorch"
    torch_info=$("$python" - <<'EOF'
import os, torch
print(torch.utils.cmake_prefix_path)
print(os.path.dirname(torch.__file__))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.__version__)
print(torch.version.cuda or "")
EOF
) || die "$python cannot import torch: install PyTorch with CUDA (pytorch.org), or set LIBTORCH=/path/to/libtorch"
    { read -r torch_cmake; read -r torch_root; read -r cxx11_abi; read -r torch_version; read -r torch_cuda; } <<<"$torch_info"
    [[ -n $torch_cuda ]] ||
      die "$python's torch $torch_version is CPU-only: install a CUDA build (pytorch.org), or set LIBTORCH=/path/to/libtorch"
    torch_summary="torch $torch_version (CUDA $torch_cuda) of $(command -v "$python")"
  fi
  say "using $torch_summary"

  for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
    if [[ -n $cuda && -x $cuda/bin/nvcc ]]; then export CUDA_HOME=$cuda CUDACXX=$cuda/bin/nvcc PATH="$cuda/bin:$PATH"; break; fi
  done
  # The GPUs' compute capability, for torch's CMake config (heygem itself compiles no kernels).
  capability=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ') || true
  if [[ $capability =~ ^[0-9]+\.[0-9]+$ ]]; then
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$capability}
    cmake_args+=(-DCMAKE_CUDA_ARCHITECTURES="${capability/./}")
  fi

  # A minimal Torch config from the package's libraries and headers. torch_cuda is linked although
  # nothing references it directly: its static initialisers register the CUDA backend.
  write_manual_config() {
    local dir=$1 cuda_includes="" d
    for d in "${CUDA_HOME:-/usr/local/cuda}/include" "$torch_root"/../nvidia/*/include "$torch_root"/../nvidia/cu*/include; do
      [[ -f $d/cuda_runtime_api.h ]] && cuda_includes+="$d;"
    done
    mkdir -p "$dir"
    cat >"$dir/TorchConfig.cmake" <<EOF
# Written by scripts/setup.sh (manual Torch config) for $torch_summary.
set(_torch_root "$torch_root")
set(TORCH_INCLUDE_DIRS "\${_torch_root}/include;\${_torch_root}/include/torch/csrc/api/include;$cuda_includes")
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=$cxx11_abi")
if(NOT TARGET torch)
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
    INTERFACE_COMPILE_OPTIONS "\${TORCH_CXX_FLAGS}"
    INTERFACE_LINK_LIBRARIES "\${_torch_root}/lib/libtorch.so;\${_torch_root}/lib/libtorch_cpu.so;\${_torch_root}/lib/libc10.so;-Wl,--no-as-needed;\${_torch_root}/lib/libtorch_cuda.so;\${_torch_root}/lib/libc10_cuda.so;-Wl,--as-needed;-Wl,-rpath,\${_torch_root}/lib")
endif()
set(TORCH_LIBRARIES torch)
set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
EOF
  }
  configure() { cmake -S . -B "$build" "${cmake_args[@]}" -DTorch_DIR="$1"; }
  case ${HEYGEM_TORCH_CONFIG:-auto} in
    real) configure "$torch_cmake/Torch" ;;
    manual) write_manual_config "$PWD/$build-torch"; configure "$PWD/$build-torch" ;;
    auto)
      if ! configure "$torch_cmake/Torch"; then
        say "torch's own CMake config failed (it needs the CUDA toolkit); using a minimal one"
        rm -f "$build/CMakeCache.txt"
        write_manual_config "$PWD/$build-torch"
        configure "$PWD/$build-torch"
      fi ;;
    *) die "HEYGEM_TORCH_CONFIG must be auto, real or manual, not '${HEYGEM_TORCH_CONFIG}'" ;;
  esac
else
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  cmake -S . -B "$build" "${cmake_args[@]}"
fi

# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
if $install; then
  if [[ -w $prefix || ( ! -e $prefix && -w $(dirname "$prefix") ) ]]; then
    cmake --install "$build" --prefix "$prefix"
  else
    sudo cmake --install "$build" --prefix "$prefix"
  fi
fi

echo
echo "heygem $($gpu && echo GPU || echo CPU) build in $build$($install && echo ", installed under $prefix")"
echo "torch: $torch_summary"
echo "FFmpeg: libavcodec $ffmpeg$([[ -n $deps_prefix ]] && echo " from $deps_prefix")"
if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>/dev/null | sed 's/^/GPU: /' || true; fi
[[ -x $build/daemon/heygemd ]] && "$build/daemon/heygemd" --build-info | sed 's/^/  /'
exit 0
