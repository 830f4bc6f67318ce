#pragma once
// Access to the parity fixtures in $HEYGEM_FIXTURES (default ../shared/fixtures from the repo root).
// Tests take seeds, shapes and batch sizes from the manifests, never from constants.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace heygem::test {

std::filesystem::path fixtures_root();
std::filesystem::path shared_root();  // the folder that holds fixtures/, models/ and media/

// The manifest.json of one fixture folder ("wav2lip", "s3fd", ...).
nlohmann::json manifest(const std::string& folder);

struct RawTensor {
  std::vector<int64_t> shape;
  std::vector<float> f32;    // filled for .f32 files
  std::vector<int64_t> i64;  // filled for .i64 files
  std::vector<uint8_t> u8;   // filled for .u8 files
  int64_t numel() const;
};

// Reads folder/file, checking its byte size against the shape the manifest records.
RawTensor load_raw(const std::string& folder, const std::string& file);

// Largest |a - b| over two equally sized arrays.
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
double max_abs(const std::vector<float>& a);

}  // namespace heygem::test
