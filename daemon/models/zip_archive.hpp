#pragma once
// A minimal reader of zip central directories (with zip64), enough for torch's zip checkpoints:
// it lists the records and locates their bytes; only "stored" (uncompressed) records can be read.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/models/checkpoint_io.hpp"

namespace heygem::models {

struct ZipEntry {
  std::string name;
  std::uint64_t header_offset = 0;  // of the local file header
  std::uint64_t data_offset = 0;    // of the record's bytes (after the local header)
  std::uint64_t size = 0;           // uncompressed size
  std::uint64_t compressed_size = 0;
  std::uint16_t method = 0;         // 0 = stored
};

class ZipArchive {
 public:
  // Reads the central directory of `source`, which must outlive the archive. Fails (naming the
  // source) when there is no valid end-of-central-directory record or an entry lies outside it.
  explicit ZipArchive(const checkpoint_io::ByteSource& source);

  // True when `source` starts like a zip file (a local file header signature).
  static bool has_signature(const checkpoint_io::ByteSource& source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // nullptr when absent

  // The bytes of a stored record as a source of its own (named "<file>: <record>").
  checkpoint_io::SliceSource open(const ZipEntry& entry) const;

 private:
  struct Directory {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    std::uint64_t count = 0;
  };
  Directory locate_directory() const;
  void read_directory(const Directory& directory);
  std::uint64_t data_offset_of(const ZipEntry& entry) const;

  const checkpoint_io::ByteSource& source_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace heygem::models
