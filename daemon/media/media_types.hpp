#pragma once
// Plain data that crosses the media library's boundary. No FFmpeg or torch types here, so the
// pipeline and tests include this without the heavy headers.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace heygem::media {

// A frame rate or time base as FFmpeg keeps it.
struct Rational {
  int num = 0;
  int den = 1;
  double value() const { return den != 0 ? static_cast<double>(num) / den : 0.0; }
  bool operator==(const Rational&) const = default;
};

// A picture NVDEC decoded, left in GPU memory: NV12 (the luma plane, then the interleaved U/V plane
// at half size), BT.601 limited range as H.264/HEVC/VP9 streams carry it. `hold` keeps the decoder's
// buffer alive; let go of it promptly, the decoder reuses a bounded pool.
struct DevicePicture {
  int device = 0;  // the CUDA device index
  int width = 0;
  int height = 0;
  const uint8_t* luma = nullptr;
  int luma_pitch = 0;
  const uint8_t* chroma = nullptr;
  int chroma_pitch = 0;
  std::shared_ptr<const void> hold;
};

// A picture in the encoder's own format: planar YUV 4:2:0, BT.601 limited range, the planes packed
// one after the other without padding (Y: width x height, then U and V: width/2 x height/2). Width
// and height are even: the encoder's size. The bytes are borrowed: `hold` keeps them alive (a
// host tensor's buffer, say), so a batch downloaded at once needs no copy per picture.
struct Yuv420Picture {
  int width = 0;
  int height = 0;
  const uint8_t* planes = nullptr;
  size_t size = 0;  // width * height * 3 / 2
  std::shared_ptr<const void> hold;
};

// One decoded picture: packed BGR24 (OpenCV's order, as the reference reads frames), rows of
// `stride` bytes (stride >= 3 * width). A reader asked for device pictures hands NVDEC's pictures
// out as `device_picture` instead, with `data` empty.
struct Frame {
  int width = 0;
  int height = 0;
  int stride = 0;
  int64_t pts_index = 0;  // index of this frame on the output (constant-rate) timeline
  // Position in whatever sequence the frame travels in; the reader sets it equal to pts_index,
  // later stages may renumber it (e.g. source frame index when looping).
  int64_t index = 0;
  std::vector<uint8_t> data;
  std::shared_ptr<const DevicePicture> device_picture;

  // Makes the frame a tightly packed width x height BGR24 picture (stride = 3 * width); keeps the
  // allocation when the size is unchanged, so a reused Frame does not reallocate.
  void resize(int new_width, int new_height) {
    width = new_width;
    height = new_height;
    stride = 3 * new_width;
    device_picture.reset();
    data.resize(static_cast<size_t>(stride) * static_cast<size_t>(new_height));
  }
  uint8_t* row(int y) { return data.data() + static_cast<size_t>(y) * static_cast<size_t>(stride); }
  const uint8_t* row(int y) const { return data.data() + static_cast<size_t>(y) * static_cast<size_t>(stride); }
};

// A row-major float matrix (the mel spectrogram: rows = 80 mel bands, cols = time steps).
struct Matrix {
  int rows = 0;
  int cols = 0;
  std::vector<float> data;
  float at(int r, int c) const { return data[static_cast<size_t>(r) * cols + c]; }
};

// Size and duration ceilings for inputs (configurable by the daemon); exceeding one is an
// invalid_input error naming the file and the limit.
struct MediaLimits {
  int max_width = 7680;
  int max_height = 4320;
  double max_duration_seconds = 3600.0;  // audio and video alike
  // The output timeline's frame rate (the source's, or the one asked for). A header claiming
  // 1,000,000 fps would otherwise turn one second of audio into a million frames.
  double max_fps = 240.0;
};

}  // namespace heygem::media
