#!/usr/bin/env bash
# Builds x264 and FFmpeg 5.1 (shared, NVDEC/CUVID, libx264) on the GPU machine from the Debian
# sources carried in .gpu/ (see docs/gpu.md: `apt-get source --download-only ffmpeg x264`,
# `apt-get download nasm libffmpeg-nvenc-dev nlohmann-json3-dev libcli11-dev libhiredis-dev
# libhiredis0.14`). Installs into $PREFIX.
# A tree packed by pack-deps.sh ($PREBUILT, default .gpu-prebuilt/heygem-deps.tar.gz beside .gpu)
# is unpacked instead when it was built for this $PREFIX: seconds instead of the ~100 s build.
set -euo pipefail
src=${1:-$PWD/.gpu}
PREFIX=${PREFIX:-/opt/heygem-deps}
work=${WORK:-/tmp/heygem-deps-build}
jobs=$(nproc)
prebuilt=${PREBUILT:-$(dirname "$src")/.gpu-prebuilt/heygem-deps.tar.gz}
if [[ ! -f $PREFIX/lib/libavcodec.so && -f $prebuilt ]]; then
  # (grep -c reads the whole list: -q would end tar early, which pipefail counts as a failure)
  if tar -tzf "$prebuilt" | grep -cx "${PREFIX#/}/lib/libavcodec.so" >/dev/null; then
    tar -C / -xzf "$prebuilt"
    echo "deps unpacked from $prebuilt into $PREFIX"
    exit 0
  fi
  echo "$prebuilt was packed for another PREFIX than $PREFIX: building" >&2
fi
mkdir -p "$work" "$PREFIX"
# header-only and tool packages: unpack into a private root, never over /
for deb in "$src"/*.deb; do dpkg -x "$deb" "$PREFIX/root"; done
export PATH="$PREFIX/root/usr/bin:$PATH"
# Debian's .pc files name /usr: point them at the private root (hiredis's names /usr/lib, not its
# multiarch folder)
while IFS= read -r pc; do
  sed -i -e "s|^prefix=/usr\$|prefix=$PREFIX/root/usr|" -e "s|=/usr/|=$PREFIX/root/usr/|" "$pc"
done < <(find "$PREFIX/root" -name '*.pc')
hiredis_pc=$PREFIX/root/usr/lib/x86_64-linux-gnu/pkgconfig/hiredis.pc
# (and its Cflags name the hiredis folder, which /usr/include's default search hides: the code
# includes <hiredis/hiredis.h>)
[[ ! -f $hiredis_pc ]] || sed -i -e "s|^libdir=.*|libdir=$PREFIX/root/usr/lib/x86_64-linux-gnu|" \
  -e 's|^Cflags: -I${includedir} |Cflags: -I${includedir} -I${includedir}/.. |' "$hiredis_pc"

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
