#pragma once
// Bounded, random-access byte input for the checkpoint readers (no torch here). Every read is
// checked against the input's size, so a lying header can neither read out of bounds nor make a
// reader allocate more than the input holds.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace heygem::models::checkpoint_io {

// Throws heygem::Error(invalid_input, "<name>: <cause>").
[[noreturn]] void fail(std::string_view name, std::string_view cause);

// A read-only sequence of bytes with a name for error messages.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }

  // Fills `out` from `offset`; fails with "truncated: <what> ..." when the range passes the end.
  void read(std::uint64_t offset, std::span<std::uint8_t> out, std::string_view what) const;
  std::vector<std::uint8_t> read_vector(std::uint64_t offset, std::uint64_t length,
                                        std::string_view what) const;
  // Whether [offset, offset + length) lies inside the input (overflow-safe).
  bool contains(std::uint64_t offset, std::uint64_t length) const;

 protected:
  ByteSource(std::string name, std::uint64_t size) : name_(std::move(name)), size_(size) {}
  virtual void read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const = 0;

 private:
  std::string name_;
  std::uint64_t size_;
};

// A file read with pread(2), straight into the caller's buffer (tensor memory for bulk data).
class FileSource final : public ByteSource {
 public:
  explicit FileSource(const std::filesystem::path& file);
  ~FileSource() override;

 protected:
  void read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const override;

 private:
  FileSource(const std::filesystem::path& file, int fd);
  int fd_;
};

// Bytes owned by the caller, which must outlive the source.
class MemorySource final : public ByteSource {
 public:
  MemorySource(std::span<const std::uint8_t> bytes, std::string name)
      : ByteSource(std::move(name), bytes.size()), bytes_(bytes) {}

 protected:
  void read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const override;

 private:
  std::span<const std::uint8_t> bytes_;
};

// A window [offset, offset + size) of another source, named "<parent>: <label>" in errors.
class SliceSource final : public ByteSource {
 public:
  SliceSource(const ByteSource& parent, std::uint64_t offset, std::uint64_t size,
              std::string_view label);

 protected:
  void read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const override;

 private:
  const ByteSource& parent_;
  std::uint64_t offset_;
};

// Sequential reading through a buffer, for streams whose length is only known once parsed
// (the pickles of the legacy format).
class ByteCursor {
 public:
  explicit ByteCursor(const ByteSource& source, std::uint64_t position = 0)
      : source_(source), position_(position) {}

  const ByteSource& source() const { return source_; }
  std::uint64_t position() const { return position_; }
  // The next `length` bytes; valid until the next call. Fails as truncated past the end.
  std::span<const std::uint8_t> take(std::uint64_t length, std::string_view what);
  std::uint8_t take_byte(std::string_view what) { return take(1, what)[0]; }

 private:
  static constexpr std::uint64_t kChunk = 64 * 1024;
  const ByteSource& source_;
  std::uint64_t position_;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t buffer_start_ = 0;
};

// Little-endian integer decoding from a byte span (the caller guarantees its size).
std::uint64_t load_le(std::span<const std::uint8_t> bytes);

}  // namespace heygem::models::checkpoint_io
