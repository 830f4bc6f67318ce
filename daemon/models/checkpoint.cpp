#include "daemon/models/checkpoint.hpp"

#include <array>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.hpp"
#include "daemon/models/checkpoint_io.hpp"
#include "daemon/models/pickle_reader.hpp"
#include "daemon/models/safetensors.hpp"
#include "daemon/models/zip_archive.hpp"

namespace heygem::models {
namespace {

using checkpoint_io::ByteCursor;
using checkpoint_io::ByteSource;
using checkpoint_io::fail;
using pickle::StorageId;
using pickle::StorageSlice;

// torch's legacy writer starts with pickle.dump(0x1950a86a20f9469cfc6c, protocol=2).
constexpr std::array<std::uint8_t, 15> kLegacyMagicPickle = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                             0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
constexpr std::int64_t kLegacyProtocolVersion = 1001;

// Bytes of `numel` elements of `dtype`, refusing sizes the input cannot hold.
std::uint64_t storage_bytes(const ByteSource& source, const StorageId& id) {
  std::int64_t bytes = 0;
  if (__builtin_mul_overflow(id.numel, pickle::element_size(id.dtype), &bytes) ||
      static_cast<std::uint64_t>(bytes) > source.size())
    fail(source.name(), "storage '" + id.key + "' declares " + std::to_string(id.numel) +
                            " elements, more than the file holds");
  return static_cast<std::uint64_t>(bytes);
}

// The part of a storage a persistent id designates (all of it, or a legacy storage view).
StorageSlice slice_of(const ByteSource& source, const at::Tensor& flat, const StorageId& id) {
  if (!id.view) return StorageSlice{flat, 0, id.numel};
  const auto& view = *id.view;
  if (view.offset < 0 || view.numel < 0 || view.offset > id.numel || view.numel > id.numel - view.offset)
    fail(source.name(), "storage view '" + view.key + "' [" + std::to_string(view.offset) + ", +" +
                            std::to_string(view.numel) + ") lies outside storage '" + id.key + "' of " +
                            std::to_string(id.numel) + " elements");
  return StorageSlice{flat, view.offset, view.numel};
}

// A storage key used again must agree with its first use.
void check_same_storage(const ByteSource& source, const at::Tensor& flat, const StorageId& id) {
  if (flat.scalar_type() != id.dtype || flat.numel() != id.numel)
    fail(source.name(), "storage '" + id.key + "' is declared twice with different types or sizes");
}

std::span<std::uint8_t> bytes_of(const at::Tensor& flat) {
  return {static_cast<std::uint8_t*>(flat.data_ptr()),
          static_cast<std::size_t>(flat.numel() * pickle::element_size(flat.scalar_type()))};
}

// Legacy format: storages are declared while the object pickle is read and filled afterwards from
// the raw section that follows the list of storage keys.
class LegacyStorages final : public pickle::StorageResolver {
 public:
  explicit LegacyStorages(const ByteSource& source) : source_(source) {}

  StorageSlice resolve(const StorageId& id) override {
    auto found = storages_.find(id.key);
    if (found == storages_.end()) {
      const std::uint64_t bytes = storage_bytes(source_, id);
      if (bytes > source_.size() - declared_bytes_)
        fail(source_.name(), "storages declare more bytes than the file holds (at storage '" + id.key + "')");
      declared_bytes_ += bytes;
      found = storages_.emplace(id.key, Storage{pickle::allocate_storage(id.dtype, id.numel), false}).first;
    }
    check_same_storage(source_, found->second.flat, id);
    return slice_of(source_, found->second.flat, id);
  }

  // Each listed storage: int64 element count, then its raw little-endian bytes.
  void read_data(std::uint64_t position, const CheckpointObject& keys) {
    for (const CheckpointObject& key_object : keys.as<CheckpointList>()) {
      const std::string& key = key_object.as<std::string>();
      const auto found = storages_.find(key);
      if (found == storages_.end())
        fail(source_.name(), "storage list names '" + key + "', which no tensor uses");
      Storage& storage = found->second;
      if (storage.filled) fail(source_.name(), "storage '" + key + "' is listed twice");
      std::array<std::uint8_t, 8> count_bytes{};
      source_.read(position, count_bytes, "element count of storage '" + key + "'");
      const auto count = static_cast<std::int64_t>(checkpoint_io::load_le(count_bytes));
      if (count != storage.flat.numel())
        fail(source_.name(), "storage size mismatch: storage '" + key + "' is declared with " +
                                 std::to_string(storage.flat.numel()) + " elements but its data has " +
                                 std::to_string(count));
      const auto destination = bytes_of(storage.flat);
      source_.read(position + 8, destination, "data of storage '" + key + "'");
      position += 8 + destination.size();
      storage.filled = true;
    }
    for (const auto& [key, storage] : storages_)
      if (!storage.filled) fail(source_.name(), "storage '" + key + "' has no data (missing from the storage list)");
  }

 private:
  struct Storage {
    at::Tensor flat;
    bool filled;
  };
  const ByteSource& source_;
  std::unordered_map<std::string, Storage> storages_;
  std::uint64_t declared_bytes_ = 0;
};

// Zip format: storage `key` is the record "<archive>/data/<key>".
class ZipStorages final : public pickle::StorageResolver {
 public:
  ZipStorages(const ByteSource& source, const ZipArchive& archive, std::string prefix)
      : source_(source), archive_(archive), prefix_(std::move(prefix)) {}

  StorageSlice resolve(const StorageId& id) override {
    auto found = storages_.find(id.key);
    if (found == storages_.end()) found = storages_.emplace(id.key, load(id)).first;
    check_same_storage(source_, found->second, id);
    return slice_of(source_, found->second, id);
  }

 private:
  at::Tensor load(const StorageId& id) {
    const std::string name = prefix_ + "data/" + id.key;
    const ZipEntry* entry = archive_.find(name);
    if (!entry) fail(source_.name(), "zip: storage record '" + name + "' is missing");
    const std::uint64_t bytes = storage_bytes(source_, id);
    if (entry->size != bytes)
      fail(source_.name(), "storage size mismatch: record '" + name + "' holds " + std::to_string(entry->size) +
                               " bytes but the storage is declared with " + std::to_string(id.numel) +
                               " elements (" + std::to_string(bytes) + " bytes)");
    const auto record = archive_.open(*entry);
    at::Tensor flat = pickle::allocate_storage(id.dtype, id.numel);
    record.read(0, bytes_of(flat), "storage data");
    return flat;
  }

  const ByteSource& source_;
  const ZipArchive& archive_;
  std::string prefix_;
  std::unordered_map<std::string, at::Tensor> storages_;
};

void check_legacy_header(const ByteSource& source, ByteCursor& cursor) {
  const auto magic = cursor.take(kLegacyMagicPickle.size(), "legacy magic number");
  if (!std::equal(magic.begin(), magic.end(), kLegacyMagicPickle.begin()))
    fail(source.name(), "wrong magic number: not a torch legacy checkpoint");
  const CheckpointObject protocol = pickle::read_pickle(cursor, nullptr);
  if (!protocol.is<std::int64_t>() || protocol.as<std::int64_t>() != kLegacyProtocolVersion)
    fail(source.name(), "unsupported legacy protocol version (expected 1001)");
  const CheckpointObject sys_info = pickle::read_pickle(cursor, nullptr);
  if (!sys_info.is<CheckpointDict>()) fail(source.name(), "legacy system info is not a dict");
  const CheckpointObject* little_endian = sys_info.as<CheckpointDict>().find("little_endian");
  if (little_endian && !(little_endian->is<bool>() && little_endian->as<bool>()))
    fail(source.name(), "big-endian checkpoints are not supported");
}

CheckpointObject read_legacy(const ByteSource& source) {
  ByteCursor cursor(source);
  check_legacy_header(source, cursor);
  LegacyStorages storages(source);
  CheckpointObject object = pickle::read_pickle(cursor, &storages);
  const CheckpointObject keys = pickle::read_pickle(cursor, nullptr);
  if (!keys.is<CheckpointList>()) fail(source.name(), "legacy storage key list is not a list");
  for (const CheckpointObject& key : keys.as<CheckpointList>())
    if (!key.is<std::string>()) fail(source.name(), "legacy storage key list holds a " + std::string(key.kind_name()));
  storages.read_data(cursor.position(), keys);
  return object;
}

CheckpointObject read_zip(const ByteSource& source) {
  const ZipArchive archive(source);
  if (archive.entries().empty()) fail(source.name(), "zip: archive is empty");
  // torch names the top folder after the file; every record lives under it.
  const std::string& first = archive.entries().front().name;
  const std::string prefix = first.substr(0, first.find('/') + 1);
  const ZipEntry* pickle_entry = archive.find(prefix + "data.pkl");
  if (!pickle_entry) fail(source.name(), "zip: no '" + prefix + "data.pkl' record (not a torch checkpoint)");
  if (const ZipEntry* byte_order = archive.find(prefix + "byteorder")) {
    const auto record = archive.open(*byte_order);
    const auto text = record.read_vector(0, std::min<std::uint64_t>(record.size(), 16), "byteorder");
    if (std::string(text.begin(), text.end()) != "little")
      fail(source.name(), "big-endian checkpoints are not supported");
  }
  ZipStorages storages(source, archive, prefix);
  const auto pickle_source = archive.open(*pickle_entry);
  ByteCursor cursor(pickle_source);
  return pickle::read_pickle(cursor, &storages);
}

CheckpointObject read_any(const ByteSource& source) {
  if (source.size() == 0) fail(source.name(), "empty file");
  if (ZipArchive::has_signature(source)) return read_zip(source);
  std::array<std::uint8_t, 2> start{};
  if (source.size() >= start.size()) {
    source.read(0, start, "format signature");
    if (start[0] == 0x80 && start[1] == 0x02) return read_legacy(source);
  }
  if (has_safetensors_signature(source)) return CheckpointObject(read_safetensors(source));
  fail(source.name(), "unrecognised format: neither a torch zip nor a torch legacy checkpoint nor safetensors");
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

}  // namespace

const CheckpointObject* CheckpointDict::find(std::string_view key) const {
  for (const auto& [item_key, value] : items)
    if (const auto* text = std::get_if<std::string>(&item_key); text && *text == key) return &value;
  return nullptr;
}

const CheckpointObject* CheckpointDict::find(std::int64_t key) const {
  for (const auto& [item_key, value] : items)
    if (const auto* number = std::get_if<std::int64_t>(&item_key); number && *number == key) return &value;
  return nullptr;
}

std::string_view CheckpointObject::kind_name_of(const Value& value) {
  static constexpr std::string_view kNames[] = {"None", "bool",  "int",  "float", "str",
                                                "list", "tuple", "dict", "tensor"};
  return kNames[value.index()];
}

void CheckpointObject::throw_kind_mismatch(std::string_view wanted) const {
  throw Error(ErrorCode::invalid_input,
              "checkpoint object is a " + std::string(kind_name()) + ", expected a " + std::string(wanted));
}

CheckpointObject read_checkpoint(const std::filesystem::path& file) {
  const checkpoint_io::FileSource source(file);
  return read_any(source);
}

CheckpointObject read_checkpoint_bytes(std::span<const std::uint8_t> bytes, std::string_view name) {
  const checkpoint_io::MemorySource source(bytes, std::string(name));
  return read_any(source);
}

StateDict state_dict_from(const CheckpointObject& checkpoint, std::string_view name) {
  if (!checkpoint.is<CheckpointDict>())
    fail(name, "checkpoint holds a " + std::string(checkpoint.kind_name()) + ", expected a dict of tensors");
  const CheckpointDict* entries = &checkpoint.as<CheckpointDict>();
  if (const CheckpointObject* inner = entries->find("state_dict"); inner && inner->is<CheckpointDict>())
    entries = &inner->as<CheckpointDict>();

  StateDict state;
  std::unordered_set<std::string> seen;
  for (const auto& [key, value] : entries->items) {
    const auto* text = std::get_if<std::string>(&key);
    if (!text) fail(name, "state_dict key " + std::to_string(std::get<std::int64_t>(key)) + " is not a string");
    if (!value.is<at::Tensor>())
      fail(name, "state_dict entry '" + *text + "' is a " + std::string(value.kind_name()) + ", not a tensor");
    std::string stripped = replace_all(*text, "module.", "");
    if (!seen.insert(stripped).second)
      fail(name, "state_dict keys collide as '" + stripped + "' once \"module.\" is removed");
    state.emplace_back(std::move(stripped), value.as<at::Tensor>());
  }
  if (state.empty()) fail(name, "checkpoint holds no tensors");
  return state;
}

StateDict load_state_dict(const std::filesystem::path& file) {
  return state_dict_from(read_checkpoint(file), file.string());
}

}  // namespace heygem::models
