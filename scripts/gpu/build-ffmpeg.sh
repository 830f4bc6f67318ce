#!/usr/bin/env bash
# Builds x264 and FFmpeg 5.1 (shared, NVDEC/CUVID, libx264) on the GPU machine from the Debian
# sources carried in .gpu/ (see docs/gpu.md: `apt-get source --download-only ffmpeg x264`,
# `apt-get download nasm libffmpeg-nvenc-dev nlohmann-json3-dev libcli11-dev`). Installs into $PREFIX.
set -euo pipefail
src=${1:-$PWD/.gpu}
PREFIX=${PREFIX:-/opt/heygem-deps}
work=${WORK:-/tmp/heygem-deps-build}
jobs=$(nproc)
mkdir -p "$work" "$PREFIX"
# header-only and tool packages: unpack into a private root, never over /
for deb in "$src"/*.deb; do dpkg -x "$deb" "$PREFIX/root"; done
export PATH="$PREFIX/root/usr/bin:$PATH"
sed -i "s|^prefix=/usr\$|prefix=$PREFIX/root/usr|" "$PREFIX"/root/usr/share/pkgconfig/ffnvcodec.pc

if [[ ! -f $PREFIX/lib/libx264.so ]]; then
  tar -C "$work" -xzf "$src"/x264_*.orig.tar.gz
  (cd "$work"/x264-*/ && ./configure --prefix="$PREFIX" --enable-shared --disable-cli >/dev/null && make -j"$jobs" >/dev/null && make install >/dev/null)
fi
if [[ ! -f $PREFIX/lib/libavcodec.so ]]; then
  tar -C "$work" -xJf "$src"/ffmpeg_*.orig.tar.xz
  (cd "$work"/ffmpeg-*/ &&
   PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig:$PREFIX/root/usr/share/pkgconfig:$PREFIX/root/usr/lib/pkgconfig" \
   ./configure --prefix="$PREFIX" --enable-shared --disable-static --enable-gpl --enable-libx264 \
     --enable-nvdec --enable-cuvid --enable-ffnvcodec --enable-nvenc --disable-doc --disable-debug \
     --extra-cflags="-I$PREFIX/root/usr/include" >/dev/null &&
   make -j"$jobs" >/dev/null && make install >/dev/null)
fi
echo "deps installed in $PREFIX"
