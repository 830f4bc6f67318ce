#include "tests/support/fixtures.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace heygem::test {

std::filesystem::path fixtures_root() {
  if (const char* env = std::getenv("HEYGEM_FIXTURES"); env && *env) return env;
  return std::filesystem::path(HEYGEM_SOURCE_DIR) / ".." / "shared" / "fixtures";
}

std::filesystem::path shared_root() { return fixtures_root() / ".."; }

nlohmann::json manifest(const std::string& folder) {
  auto path = fixtures_root() / folder / "manifest.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

static const nlohmann::json& file_entry(const nlohmann::json& files, const std::string& file) {
  // manifests list files either as an object keyed by name or as an array of {name: ...}
  if (files.is_object()) return files.at(file);
  for (const auto& entry : files)
    if (entry.value("name", entry.value("file", std::string())) == file) return entry;
  throw std::runtime_error("manifest has no entry for " + file);
}

RawTensor load_raw(const std::string& folder, const std::string& file) {
  const auto m = manifest(folder);
  const auto& entry = file_entry(m.at("files"), file);
  RawTensor out;
  out.shape = entry.at("shape").get<std::vector<int64_t>>();
  const std::string dtype = entry.at("dtype");
  auto path = fixtures_root() / folder / file;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  const auto n = static_cast<size_t>(out.numel());
  if (dtype == "float32") {
    out.f32.resize(n);
    in.read(reinterpret_cast<char*>(out.f32.data()), static_cast<std::streamsize>(n * 4));
  } else if (dtype == "int64") {
    out.i64.resize(n);
    in.read(reinterpret_cast<char*>(out.i64.data()), static_cast<std::streamsize>(n * 8));
  } else if (dtype == "uint8") {
    out.u8.resize(n);
    in.read(reinterpret_cast<char*>(out.u8.data()), static_cast<std::streamsize>(n));
  } else {
    throw std::runtime_error(file + ": unsupported dtype " + dtype);
  }
  if (!in || in.peek() != std::char_traits<char>::eof())
    throw std::runtime_error(path.string() + ": size does not match the manifest's shape");
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    if (std::isnan(d)) return INFINITY;
    worst = std::max(worst, d);
  }
  return worst;
}

double max_abs(const std::vector<float>& a) {
  double worst = 0;
  for (float x : a) worst = std::max(worst, std::fabs(double(x)));
  return worst;
}

}  // namespace heygem::test
