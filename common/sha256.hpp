#pragma once
// SHA-256 (FIPS 180-4): the content hash of the avatar cache and of the tests' frame digests.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace heygem {

class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;

  void update(const void* data, std::size_t size);
  // Ends the message; the object is spent afterwards.
  Digest finish();

  static std::string to_hex(const Digest& digest);

 private:
  void compress(const std::uint8_t* block);

  std::uint32_t state_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::uint8_t block_[64] = {};
  std::size_t fill_ = 0;
  std::uint64_t bytes_ = 0;
};

std::string sha256_hex(const void* data, std::size_t size);
std::string sha256_hex(const std::string& text);
// Streams the file in blocks (any size, bounded memory). Throws heygem::Error(invalid_input)
// naming the file when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& file);

}  // namespace heygem
