// The checkpoint reader on crafted inputs: each malformed detail gives a heygem::Error naming the
// input and the cause, never a crash or a huge allocation; corrupting or truncating the fixture
// files anywhere gives a clean error or a valid result.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "common/errors.hpp"
#include "daemon/models/checkpoint.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::models {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

Bytes fixture(const std::string& file) { return read_file(test::fixtures_root() / "checkpoints" / file); }

void append_le(Bytes& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// Writes pickle opcodes by hand (protocol 2, as torch.save does).
class Pickle {
 public:
  Pickle() { op(0x80).raw(2); }
  Pickle& op(std::uint8_t code) { return raw(code); }
  Pickle& raw(std::uint8_t byte) {
    bytes_.push_back(byte);
    return *this;
  }
  Pickle& text(std::string_view value) {
    op('X');
    append_le(bytes_, value.size(), 4);
    bytes_.insert(bytes_.end(), value.begin(), value.end());
    return *this;
  }
  Pickle& integer(std::int64_t value) {
    if (value >= 0 && value < 256) return op('K').raw(static_cast<std::uint8_t>(value));
    op(0x8a).raw(8);
    append_le(bytes_, static_cast<std::uint64_t>(value), 8);
    return *this;
  }
  Pickle& global(std::string_view module, std::string_view name) {
    op('c');
    bytes_.insert(bytes_.end(), module.begin(), module.end());
    raw('\n');
    bytes_.insert(bytes_.end(), name.begin(), name.end());
    return raw('\n');
  }
  Pickle& ints(const std::vector<std::int64_t>& values) {
    op('(');
    for (const auto value : values) integer(value);
    return op('t');
  }
  // _rebuild_tensor_v2(storage, offset, sizes, strides, False, OrderedDict()) on a float storage.
  Pickle& tensor(std::string_view key, std::int64_t numel, std::int64_t offset, const std::vector<std::int64_t>& sizes,
                 const std::vector<std::int64_t>& strides, Pickle* view = nullptr) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').text("storage").global("torch", "FloatStorage").text(key).text("cpu").integer(numel);
    if (view) {
      bytes_.insert(bytes_.end(), view->bytes_.begin() + 2, view->bytes_.end());  // without PROTO
    } else {
      op('N');
    }
    op('t').op('Q').integer(offset).ints(sizes).ints(strides).op(0x89);
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  Pickle& stop() { return op('.'); }
  Bytes bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

constexpr std::uint8_t kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                         0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

struct RawStorage {
  std::int64_t declared_count;
  std::vector<float> values;
};

struct LegacyParts {
  Pickle object;
  std::vector<std::string> keys{"0"};
  std::vector<RawStorage> storages{{4, {1, 2, 3, 4}}};
  std::int64_t protocol = 1001;
  bool little_endian = true;
};

// A legacy file: magic, protocol version, system info, object, storage keys, raw storages.
Bytes legacy_file(const LegacyParts& parts) {
  Bytes out(std::begin(kLegacyMagic), std::end(kLegacyMagic));
  const auto append = [&](const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); };
  append(Pickle().integer(parts.protocol).stop().bytes());
  append(Pickle().op('}').op('(').text("little_endian").op(parts.little_endian ? 0x88 : 0x89).op('u').stop().bytes());
  append(parts.object.bytes());
  Pickle keys;
  keys.op(']').op('(');
  for (const auto& key : parts.keys) keys.text(key);
  append(keys.op('e').stop().bytes());
  for (const auto& storage : parts.storages) {
    append_le(out, static_cast<std::uint64_t>(storage.declared_count), 8);
    const auto* data = reinterpret_cast<const std::uint8_t*>(storage.values.data());
    out.insert(out.end(), data, data + storage.values.size() * sizeof(float));
  }
  return out;
}

// {"w": tensor(2x2) over storage "0"} with the given view.
Pickle one_tensor(std::int64_t numel = 4, std::int64_t offset = 0, std::vector<std::int64_t> sizes = {2, 2},
                  std::vector<std::int64_t> strides = {2, 1}) {
  Pickle object;
  object.op('}').op('(').text("w").tensor("0", numel, offset, sizes, strides).op('u').stop();
  return object;
}

// A pickle object with the legacy framing around it and one unused-free storage.
Bytes legacy_with_object(Pickle object) {
  LegacyParts parts;
  parts.object = std::move(object);
  parts.keys.clear();
  parts.storages.clear();
  return legacy_file(parts);
}

// Expects read_checkpoint_bytes to fail with invalid_input, "<name>: ..." containing `cause`.
void expect_rejected(const Bytes& bytes, const std::string& cause) {
  const std::string name = "crafted.pth";
  try {
    read_checkpoint_bytes(bytes, name);
    ADD_FAILURE() << "accepted; expected an error containing '" << cause << "'";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_input);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(name + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(cause), std::string::npos) << message;
  }
}

TEST(LegacyCrafted, WellFormedFileLoads) {
  LegacyParts parts;
  parts.object = one_tensor();
  const CheckpointObject object = read_checkpoint_bytes(legacy_file(parts), "crafted.pth");
  const at::Tensor w = object.as<CheckpointDict>().find("w")->as<at::Tensor>();
  EXPECT_TRUE(w.equal(at::arange(1, 5, at::kFloat).reshape({2, 2})));
}

TEST(LegacyCrafted, StorageViewMetadataSelectsASlice) {
  Pickle view;
  view.op('(').text("view").integer(1).integer(2).op('t');
  Pickle object;
  object.op('}').op('(').text("w").tensor("0", 4, 0, {2}, {1}, &view).op('u').stop();
  LegacyParts parts;
  parts.object = object;
  const CheckpointObject loaded = read_checkpoint_bytes(legacy_file(parts), "crafted.pth");
  const at::Tensor w = loaded.as<CheckpointDict>().find("w")->as<at::Tensor>();
  EXPECT_TRUE(w.equal(at::tensor({2.0f, 3.0f})));
}

TEST(LegacyCrafted, StorageSizeMismatch) {
  LegacyParts parts;
  parts.object = one_tensor();
  parts.storages = {{3, {1, 2, 3, 4}}};
  expect_rejected(legacy_file(parts), "storage size mismatch");
}

TEST(LegacyCrafted, OutOfRangeViews) {
  for (const auto& [offset, sizes, strides] :
       std::vector<std::tuple<std::int64_t, std::vector<std::int64_t>, std::vector<std::int64_t>>>{
           {1, {2, 2}, {2, 1}},                  // one past the end
           {0, {2, 3}, {2, 1}},                  // too many elements
           {0, {2, 2}, {INT64_MAX, 1}},          // overflowing stride
           {5, {0}, {1}},                        // empty view beyond the end
       }) {
    LegacyParts parts;
    parts.object = one_tensor(4, offset, sizes, strides);
    expect_rejected(legacy_file(parts), "reaches outside the storage");
  }
  LegacyParts negative;
  negative.object = one_tensor(4, 0, {2, 2}, {-2, 1});
  expect_rejected(legacy_file(negative), "negative size or stride");
  LegacyParts ranks;
  ranks.object = one_tensor(4, 0, {2, 2}, {1});
  expect_rejected(legacy_file(ranks), "differ in length");
}

TEST(LegacyCrafted, LyingStorageSizeIsRefusedBeforeAllocating) {
  LegacyParts parts;
  parts.object = one_tensor(std::int64_t{1} << 40);
  expect_rejected(legacy_file(parts), "more than the file holds");
}

TEST(LegacyCrafted, TruncatedStorageData) {
  LegacyParts parts;
  parts.object = one_tensor();
  Bytes bytes = legacy_file(parts);
  bytes.erase(bytes.end() - 3, bytes.end());
  expect_rejected(bytes, "truncated");
}

TEST(LegacyCrafted, StorageListMismatches) {
  LegacyParts unused;
  unused.object = one_tensor();
  unused.keys = {"0", "1"};
  unused.storages = {{4, {1, 2, 3, 4}}, {1, {5}}};
  expect_rejected(legacy_file(unused), "which no tensor uses");
  LegacyParts unlisted;
  unlisted.object = one_tensor();
  unlisted.keys.clear();
  unlisted.storages.clear();
  expect_rejected(legacy_file(unlisted), "has no data");
}

TEST(LegacyCrafted, HeaderChecks) {
  LegacyParts parts;
  parts.object = one_tensor();
  Bytes wrong_magic = legacy_file(parts);
  wrong_magic[6] ^= 0x01;
  expect_rejected(wrong_magic, "wrong magic number");
  parts.protocol = 1000;
  expect_rejected(legacy_file(parts), "protocol version");
  parts.protocol = 1001;
  parts.little_endian = false;
  expect_rejected(legacy_file(parts), "big-endian");
}

TEST(PickleCrafted, RefusesGlobalsOutsideTheStateDictSubset) {
  expect_rejected(legacy_with_object(Pickle().global("os", "system").stop()), "refusing global 'os.system'");
  expect_rejected(legacy_with_object(Pickle().global("builtins", "eval").stop()), "refusing global 'builtins.eval'");
  expect_rejected(legacy_with_object(Pickle().global("torch", "load").stop()), "refusing global 'torch.load'");
  // Storage classes are only valid inside a persistent id, not as callables.
  expect_rejected(legacy_with_object(Pickle().global("torch", "FloatStorage").op(')').op('R').stop()),
                  "cannot be called");
}

TEST(PickleCrafted, RefusesUnsupportedOpcodes) {
  expect_rejected(legacy_with_object(Pickle().op('I').stop()), "unsupported pickle opcode 0x49 ('I')");
  expect_rejected(legacy_with_object(Pickle().op(0x81).stop()), "unsupported pickle opcode 0x81");
  expect_rejected(legacy_with_object(Pickle().op('i').stop()), "unsupported pickle opcode");
}

TEST(PickleCrafted, MalformedStreams) {
  expect_rejected(legacy_with_object(Pickle().stop()), "STOP with an empty stack");
  expect_rejected(legacy_with_object(Pickle().op('a').stop()), "stack underflow");
  expect_rejected(legacy_with_object(Pickle().op('t').stop()), "no MARK");
  expect_rejected(legacy_with_object(Pickle().op('h').raw(7).stop()), "never stored");
  expect_rejected(legacy_with_object(Pickle().op(0x8a).raw(9).stop()), "does not fit in 64 bits");
  expect_rejected(legacy_with_object(Pickle().op('}').op(')').integer(1).op('s').stop()), "dict key is a tuple");
  expect_rejected(legacy_with_object(Pickle().op(0x80).raw(9).stop()), "pickle protocol 9");
  expect_rejected(legacy_with_object(Pickle().op(']').integer(1).integer(2).op('s').stop()), "SETITEM target is a list");
  // Persistent ids are only valid in the object pickle, and only for storages.
  expect_rejected(legacy_with_object(Pickle().op('(').text("module").op('t').op('Q').stop()),
                  "persistent id with 1 fields");
}

TEST(PickleCrafted, CyclesDeepNestingAndExplosiveSharingAreRefused) {
  // A list that contains itself.
  expect_rejected(legacy_with_object(Pickle().op(']').op('q').raw(0).op('h').raw(0).op('a').stop()), "deeper than");
  // 100000 nested lists: refused by depth, not by a stack overflow.
  Pickle deep;
  for (int i = 0; i < 100000; ++i) deep.op(']');
  for (int i = 0; i < 99999; ++i) deep.op('a');
  expect_rejected(legacy_with_object(deep.stop()), "deeper than");
  // 40 levels of [x, x]: 2^40 objects once expanded.
  Pickle shared;
  shared.op(']').op('q').raw(0);
  for (int level = 0; level < 40; ++level)
    shared.op(']').op('(').op('h').raw(static_cast<std::uint8_t>(level)).op('h').raw(static_cast<std::uint8_t>(level))
        .op('e').op('q').raw(static_cast<std::uint8_t>(level + 1));
  expect_rejected(legacy_with_object(shared.stop()), "size limit");
}

TEST(PickleCrafted, PythonDictSemanticsForRepeatedKeys) {
  Pickle object;
  object.op('}').op('(').text("a").integer(1).text("b").integer(2).text("a").integer(3).op('u').stop();
  const CheckpointObject loaded = read_checkpoint_bytes(legacy_with_object(object), "crafted.pth");
  const auto& dict = loaded.as<CheckpointDict>();
  ASSERT_EQ(dict.items.size(), 2u);
  EXPECT_EQ(std::get<std::string>(dict.items[0].first), "a");
  EXPECT_EQ(dict.items[0].second.as<std::int64_t>(), 3);
}

// --- zip ---------------------------------------------------------------------------------------

std::size_t find_bytes(const Bytes& haystack, std::string_view needle, std::size_t from = 0) {
  const auto found = std::search(haystack.begin() + static_cast<std::ptrdiff_t>(from), haystack.end(),
                                 needle.begin(), needle.end());
  if (found == haystack.end()) throw std::runtime_error("fixture lacks '" + std::string(needle) + "'");
  return static_cast<std::size_t>(found - haystack.begin());
}

std::size_t central_entry(const Bytes& zip, std::string_view name) {
  // The central directory repeats each name after the local headers; find the last occurrence.
  std::size_t at = find_bytes(zip, name);
  for (;;) {
    const auto next = std::search(zip.begin() + static_cast<std::ptrdiff_t>(at) + 1, zip.end(), name.begin(), name.end());
    if (next == zip.end()) break;
    at = static_cast<std::size_t>(next - zip.begin());
  }
  return at - 46;  // start of the central header
}

TEST(ZipCrafted, CompressedRecordsAreRefused) {
  Bytes zip = fixture("zip.pth");
  zip[central_entry(zip, "zip/data.pkl") + 10] = 8;  // method: deflate
  expect_rejected(zip, "compressed records are not supported");
}

TEST(ZipCrafted, MissingRecords) {
  Bytes no_pickle = fixture("zip.pth");
  no_pickle[central_entry(no_pickle, "zip/data.pkl") + 46 + 9] = 'x';  // zip/data.pkx
  expect_rejected(no_pickle, "no 'zip/data.pkl' record");
  Bytes no_storage = fixture("zip.pth");
  no_storage[central_entry(no_storage, "zip/data/0") + 46 + 9] = 'X';
  expect_rejected(no_storage, "storage record 'zip/data/0' is missing");
}

TEST(ZipCrafted, StorageSizeMismatch) {
  Bytes zip = fixture("zip.pth");
  // data.pkl is stored uncompressed: the first storage's numel (BININT1 108) follows "cpu" BINPUT 9.
  const std::size_t numel_at = find_bytes(zip, "cpuq\x09K") + 6;
  ASSERT_EQ(zip[numel_at], 108);
  zip[numel_at] = 107;
  expect_rejected(zip, "storage size mismatch");
}

TEST(ZipCrafted, CorruptCentralDirectory) {
  Bytes zip = fixture("zip.pth");
  zip[central_entry(zip, "zip/data.pkl")] = 'Q';
  expect_rejected(zip, "bad central directory entry signature");
}

TEST(ZipCrafted, Zip64EndRecordIsFollowed) {
  const Bytes zip = fixture("zip.pth");
  const std::size_t end = zip.size() - 22;  // no archive comment in torch files
  ASSERT_EQ(zip[end], 'P');
  const auto field = [&](std::size_t offset, int bytes) {
    std::uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | zip[end + offset + static_cast<std::size_t>(i)];
    return value;
  };
  const std::uint64_t entries = field(10, 2), directory_size = field(12, 4), directory_offset = field(16, 4);
  Bytes out(zip.begin(), zip.begin() + static_cast<std::ptrdiff_t>(end));
  const std::uint64_t zip64_end = out.size();
  append_le(out, 0x06064b50, 4);
  append_le(out, 44, 8);        // size of the rest of the record
  append_le(out, 45, 2);        // version made by
  append_le(out, 45, 2);        // version needed
  append_le(out, 0, 4);         // this disk
  append_le(out, 0, 4);         // directory disk
  append_le(out, entries, 8);
  append_le(out, entries, 8);
  append_le(out, directory_size, 8);
  append_le(out, directory_offset, 8);
  append_le(out, 0x07064b50, 4);  // locator
  append_le(out, 0, 4);
  append_le(out, zip64_end, 8);
  append_le(out, 1, 4);
  append_le(out, 0x06054b50, 4);  // end record with every field saturated
  append_le(out, 0, 4);
  append_le(out, 0xffff, 2);
  append_le(out, 0xffff, 2);
  append_le(out, 0xffffffff, 4);
  append_le(out, 0xffffffff, 4);
  append_le(out, 0, 2);
  const CheckpointObject via_zip64 = read_checkpoint_bytes(out, "zip64.pth");
  const CheckpointObject plain = read_checkpoint_bytes(zip, "zip.pth");
  const auto state = state_dict_from(via_zip64, "zip64.pth");
  const auto want = state_dict_from(plain, "zip.pth");
  ASSERT_EQ(state.size(), want.size());
  for (std::size_t i = 0; i < state.size(); ++i) EXPECT_TRUE(state[i].second.equal(want[i].second)) << state[i].first;
}

// --- safetensors -------------------------------------------------------------------------------

Bytes safetensors_file(const std::string& header, const Bytes& data, std::uint64_t declared_length = 0) {
  Bytes out;
  append_le(out, declared_length ? declared_length : header.size(), 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes float_bytes(const std::vector<float>& values) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(values.data());
  return Bytes(data, data + values.size() * sizeof(float));
}

TEST(SafetensorsCrafted, WellFormedFileKeepsHeaderOrder) {
  const auto loaded = read_checkpoint_bytes(
      safetensors_file(R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("a":{"dtype":"U8","shape":[1,2],"data_offsets":[8,10]},"__metadata__":{"k":"v"}})",
                       {0, 0, 128, 63, 0, 0, 0, 64, 7, 9}),
      "crafted.safetensors");
  const auto& dict = loaded.as<CheckpointDict>();
  ASSERT_EQ(dict.items.size(), 2u);
  EXPECT_EQ(std::get<std::string>(dict.items[0].first), "z");
  EXPECT_TRUE(dict.items[0].second.as<at::Tensor>().equal(at::tensor({1.0f, 2.0f})));
  EXPECT_TRUE(dict.items[1].second.as<at::Tensor>().equal(at::tensor({7, 9}, at::kByte).reshape({1, 2})));
}

TEST(SafetensorsCrafted, MalformedHeaders) {
  const Bytes data = float_bytes({1, 2});
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", data),
                  "unsupported dtype 'F8_E4M3'");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data),
                  "outside the data section");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data),
                  "dtype and shape need");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data),
                  "not a non-negative integer");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[2]}})", data), "no 'data_offsets' field");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]} )", data),
                  "malformed JSON header");
  expect_rejected(safetensors_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data, 1ull << 40),
                  "exceeds the 100 MB limit");
}

// --- files and state dicts -----------------------------------------------------------------------

TEST(CheckpointFiles, MissingEmptyAndDirectory) {
  const auto missing = test::fixtures_root() / "checkpoints" / "does_not_exist.pth";
  try {
    read_checkpoint(missing);
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), missing.string() + ": cannot open: No such file or directory");
  }
  expect_rejected(Bytes{}, "empty file");
  EXPECT_THROW(read_checkpoint(test::fixtures_root() / "checkpoints"), Error);
}

TEST(StateDictFrom, UnwrapsAndRemovesModuleEverywhere) {
  Pickle object;
  object.op('}').op('(').text("module.a.module.w").tensor("0", 4, 0, {4}, {1}).text("b").tensor("0", 4, 1, {2}, {1}).op('u').stop();
  LegacyParts parts;
  parts.object = object;
  const StateDict state = state_dict_from(read_checkpoint_bytes(legacy_file(parts), "crafted.pth"), "crafted.pth");
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "a.w");
  EXPECT_EQ(state[1].first, "b");
  EXPECT_TRUE(state[1].second.is_alias_of(state[0].second));
}

TEST(StateDictFrom, RejectsNonTensorsCollisionsAndOtherShapes) {
  const auto from = [](Pickle object) {
    return state_dict_from(read_checkpoint_bytes(legacy_with_object(std::move(object)), "crafted.pth"), "crafted.pth");
  };
  const auto expect_cause = [&](Pickle object, const std::string& cause) {
    try {
      from(std::move(object));
      ADD_FAILURE() << "accepted; expected '" << cause << "'";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(cause), std::string::npos) << error.what();
      EXPECT_EQ(std::string(error.what()).rfind("crafted.pth: ", 0), 0u) << error.what();
    }
  };
  expect_cause(Pickle().op(']').stop(), "holds a list, expected a dict of tensors");
  expect_cause(Pickle().op('}').op('(').text("x").integer(3).op('u').stop(), "entry 'x' is a int, not a tensor");
  expect_cause(Pickle().op('}').stop(), "holds no tensors");
  expect_cause(Pickle().op('}').op('(').text("state_dict").op('}').op('(').integer(1).op('N').op('u').op('u').stop(),
               "key 1 is not a string");

  LegacyParts collision;
  collision.object.op('}').op('(').text("module.w").tensor("0", 4, 0, {4}, {1}).text("w").tensor("0", 4, 0, {4}, {1})
      .op('u').stop();
  try {
    state_dict_from(read_checkpoint_bytes(legacy_file(collision), "crafted.pth"), "crafted.pth");
    ADD_FAILURE() << "collision accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("collide as 'w'"), std::string::npos) << error.what();
  }
}

// --- robustness: every truncation and many single-byte corruptions of the fixtures -------------

void expect_clean(const Bytes& bytes, const std::string& what) {
  try {
    read_checkpoint_bytes(bytes, "mutated");
  } catch (const Error& error) {
    if (error.code() != ErrorCode::invalid_input) ADD_FAILURE() << what << ": wrong code: " << error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << what << ": escaped as a non-heygem exception: " << error.what();
  }
}

class FixtureMutations : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureMutations, TruncationsAndCorruptionsFailCleanly) {
  const Bytes original = fixture(GetParam());
  for (std::size_t length = 0; length < original.size(); ++length) {
    const Bytes prefix(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(length));
    try {
      read_checkpoint_bytes(prefix, "mutated");
      // A truncated legacy file may still hold every storage when only trailing bytes are cut;
      // no format here has such bytes, so a strict prefix must always be refused.
      ADD_FAILURE() << "prefix of " << length << " bytes accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::invalid_input);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "prefix " << length << ": " << error.what();
    }
  }
  for (std::size_t at = 0; at < original.size(); ++at) {
    for (const std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0xff}, static_cast<std::uint8_t>(original[at] ^ 0x01)}) {
      Bytes mutated = original;
      mutated[at] = value;
      expect_clean(mutated, "byte " + std::to_string(at) + " = " + std::to_string(value));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureMutations,
                         ::testing::Values("legacy.pth", "zip.pth", "state_dict.safetensors"),
                         [](const auto& info) { return info.index == 0 ? "Legacy" : info.index == 1 ? "Zip" : "Safetensors"; });

}  // namespace
}  // namespace heygem::models
