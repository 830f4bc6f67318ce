#pragma once
// Test-only: a PNG file as packed BGR24 pixels, decoded by the ffmpeg program (so detector tests need
// neither OpenCV nor our own media library). The size comes from the PNG header.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace heygem::test {

struct BgrImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, row-major, B G R
};

inline BgrImage read_png_bgr(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::array<unsigned char, 24> header{};
  if (!in.read(reinterpret_cast<char*>(header.data()), header.size()))
    throw std::runtime_error(file.string() + ": cannot read a PNG header");
  static constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!std::equal(std::begin(kSignature), std::end(kSignature), header.begin()) ||
      std::string(header.begin() + 12, header.begin() + 16) != "IHDR")
    throw std::runtime_error(file.string() + ": not a PNG file");
  auto big_endian = [&](size_t at) {
    return (int64_t{header[at]} << 24) | (int64_t{header[at + 1]} << 16) | (int64_t{header[at + 2]} << 8) |
           int64_t{header[at + 3]};
  };
  BgrImage image;
  image.width = big_endian(16);
  image.height = big_endian(20);

  const std::string command =
      "ffmpeg -hide_banner -loglevel error -i '" + file.string() + "' -f rawvideo -pix_fmt bgr24 -";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  image.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  const size_t got = std::fread(image.pixels.data(), 1, image.pixels.size(), pipe.get());
  const bool trailing = std::fgetc(pipe.get()) != EOF;
  if (got != image.pixels.size() || trailing)
    throw std::runtime_error(command + ": expected " + std::to_string(image.pixels.size()) + " bytes of BGR24");
  return image;
}

}  // namespace heygem::test
