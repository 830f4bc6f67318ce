#include "daemon/models/zip_archive.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <span>

namespace heygem::models {
namespace {

using checkpoint_io::fail;

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint64_t kZip64EndSize = 56;
constexpr std::uint64_t kCentralHeaderSize = 46;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kMaxCommentSize = 0xffff;
constexpr std::uint16_t kZip64ExtraId = 0x0001;

// Little-endian fields of a record held in memory; reads past the record fail as corrupt.
class Fields {
 public:
  Fields(std::span<const std::uint8_t> bytes, const checkpoint_io::ByteSource& source, std::string_view what)
      : bytes_(bytes), source_(source), what_(what) {}

  std::uint64_t get(std::size_t offset, std::size_t width) const {
    if (offset > bytes_.size() || width > bytes_.size() - offset)
      fail(source_.name(), "zip: corrupt " + std::string(what_) + " (a field runs past its end)");
    return checkpoint_io::load_le(bytes_.subspan(offset, width));
  }
  std::uint16_t u16(std::size_t offset) const { return static_cast<std::uint16_t>(get(offset, 2)); }
  std::uint32_t u32(std::size_t offset) const { return static_cast<std::uint32_t>(get(offset, 4)); }
  std::uint64_t u64(std::size_t offset) const { return get(offset, 8); }

 private:
  std::span<const std::uint8_t> bytes_;
  const checkpoint_io::ByteSource& source_;
  std::string_view what_;
};

}  // namespace

ZipArchive::ZipArchive(const checkpoint_io::ByteSource& source) : source_(source) {
  read_directory(locate_directory());
}

bool ZipArchive::has_signature(const checkpoint_io::ByteSource& source) {
  if (source.size() < 4) return false;
  std::array<std::uint8_t, 4> magic{};
  source.read(0, magic, "zip signature");
  return checkpoint_io::load_le(magic) == kLocalHeaderSignature;
}

ZipArchive::Directory ZipArchive::locate_directory() const {
  if (source_.size() < kEndSize)
    fail(source_.name(), "zip: too short for an end-of-central-directory record (truncated?)");
  // The end record sits in the last 22 + (comment <= 64 KiB) bytes; search it backwards and accept
  // the candidate whose comment length reaches exactly the end of the file.
  const std::uint64_t tail_size = std::min(source_.size(), kEndSize + kMaxCommentSize);
  const std::uint64_t tail_start = source_.size() - tail_size;
  const auto tail = source_.read_vector(tail_start, tail_size, "zip end of central directory");
  const Fields tail_fields(tail, source_, "end of central directory");
  std::optional<std::uint64_t> end_at;  // offset inside `tail`
  for (std::uint64_t at = tail_size - kEndSize + 1; at-- > 0;) {
    if (tail_fields.u32(at) == kEndSignature && at + kEndSize + tail_fields.u16(at + 20) == tail_size) {
      end_at = at;
      break;
    }
  }
  if (!end_at)
    fail(source_.name(), "zip: end-of-central-directory record not found (truncated or not a zip file)");
  const Fields end(std::span<const std::uint8_t>(tail).subspan(*end_at, kEndSize), source_,
                   "end of central directory");
  if (end.u16(4) != 0 || end.u16(6) != 0) fail(source_.name(), "zip: multi-disk archives are not supported");

  Directory directory{end.u32(16), end.u32(12), end.u16(10)};
  const std::uint64_t end_offset = tail_start + *end_at;
  const bool zip64 = directory.offset == 0xffffffff || directory.size == 0xffffffff || directory.count == 0xffff;
  if (zip64 || (end_offset >= kZip64LocatorSize &&
                *end_at >= kZip64LocatorSize && tail_fields.u32(*end_at - kZip64LocatorSize) == kZip64LocatorSignature)) {
    std::array<std::uint8_t, kZip64LocatorSize> locator_bytes{};
    if (end_offset < kZip64LocatorSize) fail(source_.name(), "zip: zip64 locator missing");
    source_.read(end_offset - kZip64LocatorSize, locator_bytes, "zip64 locator");
    const Fields locator(locator_bytes, source_, "zip64 locator");
    if (locator.u32(0) != kZip64LocatorSignature) fail(source_.name(), "zip: zip64 locator missing");
    std::array<std::uint8_t, kZip64EndSize> end64_bytes{};
    source_.read(locator.u64(8), end64_bytes, "zip64 end of central directory");
    const Fields end64(end64_bytes, source_, "zip64 end of central directory");
    if (end64.u32(0) != kZip64EndSignature) fail(source_.name(), "zip: bad zip64 end-of-central-directory signature");
    directory = Directory{end64.u64(48), end64.u64(40), end64.u64(32)};
  }
  if (!source_.contains(directory.offset, directory.size))
    fail(source_.name(), "zip: central directory [" + std::to_string(directory.offset) + ", +" +
                             std::to_string(directory.size) + ") lies outside the file (truncated?)");
  if (directory.count > directory.size / kCentralHeaderSize)
    fail(source_.name(), "zip: " + std::to_string(directory.count) + " entries cannot fit in a central directory of " +
                             std::to_string(directory.size) + " bytes");
  return directory;
}

void ZipArchive::read_directory(const Directory& directory) {
  const auto bytes = source_.read_vector(directory.offset, directory.size, "zip central directory");
  const Fields fields(bytes, source_, "central directory");
  std::uint64_t at = 0;
  entries_.reserve(directory.count);
  for (std::uint64_t i = 0; i < directory.count; ++i) {
    if (fields.u32(at) != kCentralHeaderSignature)
      fail(source_.name(), "zip: bad central directory entry signature for entry " + std::to_string(i));
    ZipEntry entry;
    const std::uint16_t flags = fields.u16(at + 8);
    entry.method = fields.u16(at + 10);
    entry.compressed_size = fields.u32(at + 20);
    entry.size = fields.u32(at + 24);
    const std::uint16_t name_length = fields.u16(at + 28);
    const std::uint16_t extra_length = fields.u16(at + 30);
    const std::uint16_t comment_length = fields.u16(at + 32);
    entry.header_offset = fields.u32(at + 42);
    const std::uint64_t name_at = at + kCentralHeaderSize;
    fields.get(name_at, 0);
    if (name_length > bytes.size() - name_at) fail(source_.name(), "zip: corrupt central directory (name runs past its end)");
    entry.name.assign(reinterpret_cast<const char*>(bytes.data() + name_at), name_length);
    if (flags & 0x1) fail(source_.name(), "zip: " + entry.name + ": encrypted records are not supported");

    // zip64 extra field: 64-bit values for exactly the fields saturated at 0xffffffff, in order.
    std::uint64_t extra_at = name_at + name_length;
    const std::uint64_t extra_end = extra_at + extra_length;
    while (extra_at + 4 <= extra_end) {
      const std::uint16_t id = fields.u16(extra_at);
      const std::uint16_t length = fields.u16(extra_at + 2);
      if (id == kZip64ExtraId) {
        std::uint64_t value_at = extra_at + 4;
        for (std::uint64_t* field : {&entry.size, &entry.compressed_size, &entry.header_offset}) {
          if (*field != 0xffffffff) continue;
          if (value_at + 8 > extra_at + 4 + length) fail(source_.name(), "zip: " + entry.name + ": short zip64 extra field");
          *field = fields.u64(value_at);
          value_at += 8;
        }
      }
      extra_at += 4 + std::uint64_t{length};
    }
    at = extra_end + comment_length;
    if (at > bytes.size()) fail(source_.name(), "zip: corrupt central directory (entry " + std::to_string(i) + " runs past its end)");

    entry.data_offset = data_offset_of(entry);
    if (!index_.emplace(entry.name, entries_.size()).second)
      fail(source_.name(), "zip: duplicate record '" + entry.name + "'");
    entries_.push_back(std::move(entry));
  }
}

std::uint64_t ZipArchive::data_offset_of(const ZipEntry& entry) const {
  std::array<std::uint8_t, kLocalHeaderSize> header_bytes{};
  source_.read(entry.header_offset, header_bytes, "zip local header of " + entry.name);
  const Fields header(header_bytes, source_, "local header");
  if (header.u32(0) != kLocalHeaderSignature)
    fail(source_.name(), "zip: " + entry.name + ": bad local header signature");
  const std::uint64_t data_offset = entry.header_offset + kLocalHeaderSize + header.u16(26) + header.u16(28);
  if (!source_.contains(data_offset, entry.compressed_size))
    fail(source_.name(), "truncated: zip record " + entry.name + " needs bytes [" + std::to_string(data_offset) +
                             ", +" + std::to_string(entry.compressed_size) + ") but the file has " +
                             std::to_string(source_.size()));
  return data_offset;
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  const auto found = index_.find(std::string(name));
  return found == index_.end() ? nullptr : &entries_[found->second];
}

checkpoint_io::SliceSource ZipArchive::open(const ZipEntry& entry) const {
  if (entry.method != 0 || entry.compressed_size != entry.size)
    fail(source_.name(), "zip: " + entry.name + ": compressed records are not supported (method " +
                             std::to_string(entry.method) + "); torch writes them stored");
  return checkpoint_io::SliceSource(source_, entry.data_offset, entry.size, entry.name);
}

}  // namespace heygem::models
