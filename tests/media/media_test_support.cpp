#include "tests/media/media_test_support.hpp"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "daemon/media/video_reader.hpp"

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
}

namespace heygem::media::test {
namespace {

std::string ffmpeg_program() {
  if (const char* env = std::getenv("HEYGEM_FFMPEG"); env && *env) return env;
  return "ffmpeg";
}

std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

// Runs a shell command and returns its standard output; throws when it fails.
std::vector<uint8_t> capture(const std::string& command) {
  struct PipeCloser {
    void operator()(FILE* pipe) const { if (pipe) ::pclose(pipe); }
  };
  FILE* raw = ::popen(command.c_str(), "r");
  if (!raw) throw std::runtime_error("cannot run: " + command);
  std::unique_ptr<FILE, PipeCloser> pipe(raw);
  std::vector<uint8_t> out;
  std::array<uint8_t, 65536> chunk{};
  size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe.get())) > 0) out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  const int status = ::pclose(pipe.release());
  if (status != 0) throw std::runtime_error("command failed (status " + std::to_string(status) + "): " + command);
  return out;
}

uint32_t read_u32le(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }
uint32_t read_u32be(const uint8_t* p) { return uint32_t{p[0]} << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

std::vector<uint8_t> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

bool ffmpeg_available() {
  return std::system((ffmpeg_program() + " -version > /dev/null 2>&1").c_str()) == 0;
}

void run_ffmpeg(const std::string& arguments) {
  const std::string command = ffmpeg_program() + " -nostdin -hide_banner -v error -y " + arguments;
  const int status = std::system(command.c_str());
  if (status != 0) throw std::runtime_error("ffmpeg failed (status " + std::to_string(status) + "): " + command);
}

std::vector<uint8_t> ffmpeg_decode_bgr(const std::filesystem::path& file, const std::string& extra_output_args) {
  return capture(ffmpeg_program() + " -nostdin -v error -i " + quoted(file) + " -sws_flags bicubic " +
                 extra_output_args + " -pix_fmt bgr24 -f rawvideo -");
}

std::vector<int16_t> ffmpeg_decode_mono16k(const std::filesystem::path& file) {
  const auto bytes = capture(ffmpeg_program() + " -nostdin -v error -i " + quoted(file) +
                             " -vn -ac 1 -ar 16000 -c:a pcm_s16le -f s16le -");
  std::vector<int16_t> samples(bytes.size() / 2);
  std::memcpy(samples.data(), bytes.data(), samples.size() * 2);
  return samples;
}

std::vector<uint8_t> packed_bgr(const Frame& frame) {
  std::vector<uint8_t> out(static_cast<size_t>(frame.width) * frame.height * 3);
  for (int y = 0; y < frame.height; ++y)
    std::memcpy(out.data() + static_cast<size_t>(y) * frame.width * 3, frame.row(y), static_cast<size_t>(frame.width) * 3);
  return out;
}

double psnr(const Frame& a, const Frame& b) {
  if (a.width != b.width || a.height != b.height) return 0.0;
  const auto pa = packed_bgr(a), pb = packed_bgr(b);
  double squared = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const double d = double(pa[i]) - double(pb[i]);
    squared += d * d;
  }
  if (squared == 0) return INFINITY;
  return 10.0 * std::log10(255.0 * 255.0 / (squared / static_cast<double>(pa.size())));
}

std::vector<int16_t> read_wav_s16(const std::filesystem::path& file) {
  const auto bytes = read_bytes(file);
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) != 0 || std::memcmp(bytes.data() + 8, "WAVE", 4) != 0)
    throw std::runtime_error(file.string() + ": not a RIFF/WAVE file");
  size_t at = 12;
  while (at + 8 <= bytes.size()) {
    const uint32_t size = read_u32le(bytes.data() + at + 4);
    if (std::memcmp(bytes.data() + at, "data", 4) == 0) {
      const size_t count = std::min<size_t>(size, bytes.size() - at - 8) / 2;
      std::vector<int16_t> samples(count);
      std::memcpy(samples.data(), bytes.data() + at + 8, count * 2);
      return samples;
    }
    at += 8 + size + (size & 1);
  }
  throw std::runtime_error(file.string() + ": no data chunk");
}

void write_wav_s16(const std::filesystem::path& file, const std::vector<int16_t>& samples, int sample_rate, int channels) {
  std::ofstream out(file, std::ios::binary);
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) out.put(static_cast<char>(v >> (8 * i))); };
  auto u16 = [&](uint16_t v) { out.put(static_cast<char>(v)); out.put(static_cast<char>(v >> 8)); };
  const auto data_bytes = static_cast<uint32_t>(samples.size() * 2);
  out.write("RIFF", 4);
  u32(36 + data_bytes);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);
  u16(static_cast<uint16_t>(channels));
  u32(static_cast<uint32_t>(sample_rate));
  u32(static_cast<uint32_t>(sample_rate * channels * 2));
  u16(static_cast<uint16_t>(channels * 2));
  u16(16);
  out.write("data", 4);
  u32(data_bytes);
  out.write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(data_bytes));
}

std::vector<std::string> mp4_top_level_boxes(const std::filesystem::path& file) {
  const auto bytes = read_bytes(file);
  std::vector<std::string> boxes;
  size_t at = 0;
  while (at + 8 <= bytes.size()) {
    uint64_t size = read_u32be(bytes.data() + at);
    if (size == 1 && at + 16 <= bytes.size())
      size = uint64_t{read_u32be(bytes.data() + at + 8)} << 32 | read_u32be(bytes.data() + at + 12);
    boxes.emplace_back(reinterpret_cast<const char*>(bytes.data() + at + 4), 4);
    if (size < 8) break;
    at += size;
  }
  return boxes;
}

StreamFacts probe_stream(const std::filesystem::path& file, const std::string& type) {
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, file.c_str(), nullptr, nullptr) < 0) throw std::runtime_error("cannot open " + file.string());
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> format(raw, [](AVFormatContext* f) { avformat_close_input(&f); });
  if (avformat_find_stream_info(format.get(), nullptr) < 0) throw std::runtime_error("no stream info in " + file.string());
  const AVMediaType wanted = type == "audio" ? AVMEDIA_TYPE_AUDIO : AVMEDIA_TYPE_VIDEO;
  const int index = av_find_best_stream(format.get(), wanted, -1, -1, nullptr, 0);
  StreamFacts facts;
  if (index < 0) return facts;
  const AVStream* stream = format->streams[index];
  facts.codec = avcodec_get_name(stream->codecpar->codec_id);
  facts.duration_seconds = stream->duration != AV_NOPTS_VALUE ? stream->duration * av_q2d(stream->time_base) : 0.0;
  facts.width = stream->codecpar->width;
  facts.height = stream->codecpar->height;
  facts.sample_rate = stream->codecpar->sample_rate;
  facts.fps = av_q2d(stream->r_frame_rate);
  if (wanted == AVMEDIA_TYPE_VIDEO) {
    const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(stream->codecpar->format));
    facts.pixel_format = name ? name : "";
  }
  AVPacket* packet = av_packet_alloc();
  while (av_read_frame(format.get(), packet) >= 0) {
    if (packet->stream_index == index) ++facts.frames;
    av_packet_unref(packet);
  }
  av_packet_free(&packet);
  return facts;
}

std::vector<Frame> read_all_frames(const std::filesystem::path& file, bool constant_frame_rate,
                                   std::optional<Rational> fps) {
  VideoReaderOptions options;
  options.constant_frame_rate = constant_frame_rate;
  options.output_fps = fps;
  VideoReader reader(file, options);
  std::vector<Frame> frames;
  Frame frame;
  while (reader.next(frame)) frames.push_back(frame);
  return frames;
}

}  // namespace heygem::media::test
