// Decode and encode speed of heygem_media on this machine (a measuring tool, not a test).
//   media_speed decode FILE...         frames/s decoding FILE to BGR at its own rate
//   media_speed encode WxH FRAMES DIR  frames/s encoding with the default options (crf 18, veryfast)
//   media_speed mel SECONDS            time of the Wav2Lip mel of SECONDS of 16 kHz noise
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "daemon/media/mel.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/media/video_writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using heygem::media::Frame;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void measure_decode(const std::filesystem::path& file) {
  const auto start = Clock::now();
  heygem::media::VideoReader reader(file);
  Frame frame;
  int64_t frames = 0;
  while (reader.next(frame)) ++frames;
  const double elapsed = seconds_since(start);
  std::printf("decode %s %dx%d: %lld frames in %.3f s = %.1f fps\n", file.filename().c_str(), reader.info().width,
              reader.info().height, static_cast<long long>(frames), elapsed, frames / elapsed);
}

void measure_encode(int width, int height, int frames, const std::filesystem::path& directory) {
  heygem::media::VideoWriterOptions options;
  options.width = width;
  options.height = height;
  const auto output = directory / ("media_speed_" + std::to_string(width) + "x" + std::to_string(height) + ".mp4");
  Frame frame;
  frame.resize(width, height);
  const auto start = Clock::now();
  {
    heygem::media::VideoWriter writer(output, options);
    for (int i = 0; i < frames; ++i) {
      // a moving gradient: the encoder has real motion to code
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
          uint8_t* p = frame.row(y) + x * 3;
          p[0] = static_cast<uint8_t>(x + 2 * i);
          p[1] = static_cast<uint8_t>(y + i);
          p[2] = static_cast<uint8_t>((x ^ y) + 3 * i);
        }
      writer.write(frame);
    }
    writer.finish();
  }
  const double elapsed = seconds_since(start);
  std::printf("encode %dx%d crf %d %s: %d frames in %.3f s = %.1f fps (%ju bytes)\n", width, height, options.crf,
              options.preset.c_str(), frames, elapsed, frames / elapsed,
              static_cast<uintmax_t>(std::filesystem::file_size(output)));
  std::filesystem::remove(output);
}

void measure_mel(double seconds) {
  std::vector<float> samples(static_cast<size_t>(seconds * 16000));
  uint32_t state = 1;
  for (float& s : samples) {
    state = state * 1664525u + 1013904223u;
    s = static_cast<float>(static_cast<int32_t>(state)) / 4294967296.0f;
  }
  const auto start = Clock::now();
  const auto mel = heygem::media::melspectrogram(samples);
  const double elapsed = seconds_since(start);
  std::printf("mel of %.0f s: %d columns in %.3f s\n", seconds, mel.cols, elapsed);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "decode" && argc > 2) {
      for (int i = 2; i < argc; ++i) measure_decode(argv[i]);
      return 0;
    }
    if (mode == "mel" && argc > 2) {
      measure_mel(std::atof(argv[2]));
      return 0;
    }
    int width = 0, height = 0;
    if (mode == "encode" && argc > 4 && std::sscanf(argv[2], "%dx%d", &width, &height) == 2) {
      measure_encode(width, height, std::atoi(argv[3]), argv[4]);
      return 0;
    }
    std::fprintf(stderr, "usage: media_speed decode FILE... | encode WxH FRAMES DIR | mel SECONDS\n");
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "media_speed: %s\n", error.what());
    return 1;
  }
}
