#include "daemon/pipeline/avatar_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <variant>

#include "common/errors.hpp"
#include "common/sha256.hpp"
#include "common/unique_fd.hpp"

namespace heygem::pipeline {
namespace {

constexpr char kMagic[8] = {'H', 'G', 'A', 'V', 'A', 'T', 'A', 'R'};
constexpr const char* kSuffix = ".boxes";
constexpr std::size_t kDigestSize = 32;
constexpr std::size_t kBytesPerFrame = 1 + 4 * 4;

// Little-endian fields, so an entry means the same on any host.
class Writer {
 public:
  void bytes(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    out_.append(p, size);
  }
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void f32(float v) { u32(std::bit_cast<std::uint32_t>(v)); }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

// Reads fields from a byte range; any overrun is a format error.
class Reader {
 public:
  explicit Reader(const std::string& data, std::size_t end) : data_(data), end_(end) {}
  struct Overrun {};
  const char* take(std::size_t size) {
    if (end_ - at_ < size) throw Overrun{};
    const char* p = data_.data() + at_;
    at_ += size;
    return p;
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(*take(1)); }
  std::uint32_t u32() {
    const auto* p = reinterpret_cast<const unsigned char*>(take(4));
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
  }
  std::uint64_t u64() {
    const std::uint64_t low = u32();
    return low | std::uint64_t{u32()} << 32;
  }
  float f32() { return std::bit_cast<float>(u32()); }
  bool done() const { return at_ == end_; }
  std::size_t left() const { return end_ - at_; }

 private:
  const std::string& data_;
  std::size_t end_;
  std::size_t at_ = 0;
};

std::string encode(const AvatarKey& key, const AvatarBoxes& boxes) {
  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.u32(AvatarCache::kFormatVersion);
  const std::string key_text = key.text();
  w.u32(static_cast<std::uint32_t>(key_text.size()));
  w.bytes(key_text.data(), key_text.size());
  w.u64(boxes.faces.size());
  w.u8(boxes.complete ? 1 : 0);
  for (const auto& face : boxes.faces) {
    w.u8(face ? 1 : 0);
    const RawFace f = face.value_or(RawFace{});
    for (const float v : {f.x1, f.y1, f.x2, f.y2}) w.f32(v);
  }
  Sha256 digest;
  digest.update(w.text().data(), w.text().size());
  const auto sum = digest.finish();
  w.bytes(sum.data(), sum.size());
  return std::move(w.text());
}

// The boxes of `data`, or the reason they cannot be used.
std::variant<AvatarBoxes, std::string> decode(const std::string& data, const AvatarKey& key) {
  if (data.size() < sizeof(kMagic) + kDigestSize || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0)
    return std::string("not an avatar cache file");
  const std::size_t body = data.size() - kDigestSize;
  Sha256 digest;
  digest.update(data.data(), body);
  const auto sum = digest.finish();
  if (std::memcmp(sum.data(), data.data() + body, kDigestSize) != 0) return std::string("checksum mismatch (corrupt)");
  try {
    Reader r(data, body);
    r.take(sizeof(kMagic));
    if (const auto version = r.u32(); version != AvatarCache::kFormatVersion)
      return "format version " + std::to_string(version) + ", this daemon reads " +
             std::to_string(AvatarCache::kFormatVersion);
    const std::uint32_t key_size = r.u32();
    if (std::string(r.take(key_size), key_size) != key.text()) return std::string("written for another key");
    const std::uint64_t frames = r.u64();
    AvatarBoxes boxes;
    boxes.complete = r.u8() != 0;
    if (frames > r.left() / kBytesPerFrame || r.left() != frames * kBytesPerFrame)
      return std::string("frame count does not match the file size");
    boxes.faces.reserve(frames);
    for (std::uint64_t i = 0; i < frames; ++i) {
      const bool has_face = r.u8() != 0;
      RawFace f;
      f.x1 = r.f32();
      f.y1 = r.f32();
      f.x2 = r.f32();
      f.y2 = r.f32();
      boxes.faces.push_back(has_face ? std::optional<RawFace>(f) : std::nullopt);
    }
    if (!r.done()) return std::string("trailing bytes");
    return boxes;
  } catch (const Reader::Overrun&) {
    return std::string("truncated");
  }
}

void write_all(int fd, const std::string& data, const std::filesystem::path& file) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorCode::resource, "avatar cache: cannot write " + file.string() + ": " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string AvatarKey::text() const {
  std::ostringstream out;
  out << "video_sha256=" << video_sha256 << "\ndetector=" << detector << "\nfps=" << fps_num << "/" << fps_den
      << "\ndetector_batch=" << detector_batch << "\n";
  return out.str();
}

AvatarCache::AvatarCache(AvatarCacheOptions options) : options_(std::move(options)) {
  std::error_code ec;
  std::filesystem::create_directories(options_.directory, ec);
  if (ec || !std::filesystem::is_directory(options_.directory))
    throw Error(ErrorCode::resource, "avatar cache: cannot create " + options_.directory.string() + ": " + ec.message());
  std::filesystem::permissions(options_.directory, std::filesystem::perms::owner_all, ec);
}

std::filesystem::path AvatarCache::entry_path(const AvatarKey& key) const {
  return options_.directory / (sha256_hex(key.text()) + kSuffix);
}

std::optional<AvatarBoxes> AvatarCache::load(const AvatarKey& key) const {
  const auto file = entry_path(key);
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return std::nullopt;  // no entry: the usual miss
  if (size > options_.max_bytes) {
    spdlog::warn("avatar cache: ignoring {}: {} bytes, more than the cache may hold", file.string(), size);
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    spdlog::warn("avatar cache: ignoring {}: cannot be read", file.string());
    return std::nullopt;
  }
  auto decoded = decode(data, key);
  if (const auto* why = std::get_if<std::string>(&decoded)) {
    spdlog::warn("avatar cache: ignoring {}: {}; the faces are detected again", file.string(), *why);
    return std::nullopt;
  }
  ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);  // recently used: the last to be evicted
  return std::get<AvatarBoxes>(std::move(decoded));
}

void AvatarCache::store(const AvatarKey& key, const AvatarBoxes& boxes) const {
  const auto file = entry_path(key);
  std::string temp = (options_.directory / (".tmp-XXXXXX")).string();
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.valid())
    throw Error(ErrorCode::resource, "avatar cache: cannot create a file in " + options_.directory.string() + ": " +
                                         std::strerror(errno));
  try {
    write_all(fd.get(), encode(key, boxes), temp);
    if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0)
      throw Error(ErrorCode::resource, "avatar cache: cannot write " + temp + ": " + std::strerror(errno));
    if (::rename(temp.c_str(), file.c_str()) != 0)
      throw Error(ErrorCode::resource, "avatar cache: cannot rename " + temp + " to " + file.string() + ": " +
                                           std::strerror(errno));
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  evict();
}

void AvatarCache::evict() const {
  struct Entry {
    std::filesystem::file_time_type used;
    std::uint64_t bytes;
    std::filesystem::path path;
  };
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& item : std::filesystem::directory_iterator(options_.directory, ec)) {
    if (item.path().extension() != kSuffix) continue;
    std::error_code item_ec;
    const auto bytes = item.file_size(item_ec);
    const auto used = item.last_write_time(item_ec);
    if (item_ec) continue;  // removed meanwhile by another job's eviction
    entries.push_back({used, bytes, item.path()});
    total += bytes;
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.used, a.path) < std::tie(b.used, b.path); });
  for (const auto& entry : entries) {
    if (total <= options_.max_bytes) break;
    std::filesystem::remove(entry.path, ec);
    total -= entry.bytes;
    spdlog::debug("avatar cache: evicted {} ({} bytes, least recently used)", entry.path.string(), entry.bytes);
  }
}

std::string weights_identity(const std::filesystem::path& weights) {
  struct stat info {};
  if (::stat(weights.c_str(), &info) != 0)
    throw Error(ErrorCode::invalid_input, weights.string() + ": cannot stat the weights: " + std::strerror(errno));
  const auto mtime_ns = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  return weights.string() + " size=" + std::to_string(info.st_size) + " mtime=" + std::to_string(mtime_ns);
}

}  // namespace heygem::pipeline
