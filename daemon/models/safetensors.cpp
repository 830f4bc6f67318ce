#include "daemon/models/safetensors.hpp"

#include <array>
#include <optional>

#include <nlohmann/json.hpp>

#include "daemon/models/pickle_reader.hpp"

namespace heygem::models {
namespace {

using checkpoint_io::fail;
using Json = nlohmann::ordered_json;  // keeps the header's order, which is the file order

// The format's own limit on the header size; also keeps a lying length from allocating.
constexpr std::uint64_t kMaxHeaderSize = 100u * 1024 * 1024;

std::optional<at::ScalarType> safetensors_dtype(std::string_view name) {
  static const std::pair<std::string_view, at::ScalarType> kTypes[] = {
      {"F64", at::ScalarType::Double}, {"F32", at::ScalarType::Float},  {"F16", at::ScalarType::Half},
      {"BF16", at::ScalarType::BFloat16}, {"I64", at::ScalarType::Long}, {"I32", at::ScalarType::Int},
      {"I16", at::ScalarType::Short},  {"I8", at::ScalarType::Char},    {"U8", at::ScalarType::Byte},
      {"BOOL", at::ScalarType::Bool},
  };
  for (const auto& [type_name, dtype] : kTypes)
    if (type_name == name) return dtype;
  return std::nullopt;
}

std::uint64_t header_length(const checkpoint_io::ByteSource& source) {
  std::array<std::uint8_t, 8> length_bytes{};
  source.read(0, length_bytes, "safetensors header length");
  return checkpoint_io::load_le(length_bytes);
}

class TensorReader {
 public:
  TensorReader(const checkpoint_io::ByteSource& source, std::uint64_t data_start)
      : source_(source), data_start_(data_start), data_size_(source.size() - data_start) {}

  at::Tensor read(const std::string& name, const Json& entry) const {
    if (!entry.is_object()) bad(name, "entry is not an object");
    const Json& dtype_field = field(name, entry, "dtype");
    if (!dtype_field.is_string()) bad(name, "dtype is not a string");
    const auto dtype = safetensors_dtype(dtype_field.get<std::string>());
    if (!dtype) bad(name, "unsupported dtype '" + dtype_field.get<std::string>() + "'");

    if (!field(name, entry, "shape").is_array()) bad(name, "shape is not an array");
    std::vector<std::int64_t> shape;
    std::int64_t numel = 1;
    for (const Json& dim : field(name, entry, "shape")) {
      if (!dim.is_number_unsigned()) bad(name, "shape holds a value that is not a non-negative integer");
      const auto size = dim.get<std::uint64_t>();
      if (size > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, static_cast<std::int64_t>(size), &numel))
        bad(name, "shape too large");
      shape.push_back(static_cast<std::int64_t>(size));
    }

    const Json& offsets = field(name, entry, "data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      bad(name, "data_offsets is not a pair of non-negative integers");
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size_)
      bad(name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") outside the data section of " + std::to_string(data_size_) + " bytes (truncated?)");
    const std::int64_t element_size = pickle::element_size(*dtype);
    std::int64_t bytes = 0;
    if (__builtin_mul_overflow(numel, element_size, &bytes) || static_cast<std::uint64_t>(bytes) != end - begin)
      bad(name, "data_offsets span " + std::to_string(end - begin) + " bytes but dtype and shape need " +
                    std::to_string(numel) + " x " + std::to_string(element_size));

    at::Tensor tensor = pickle::allocate_storage(*dtype, numel);
    source_.read(data_start_ + begin,
                 std::span<std::uint8_t>(static_cast<std::uint8_t*>(tensor.data_ptr()), static_cast<std::size_t>(bytes)),
                 "safetensors tensor " + name);
    return tensor.view(shape);
  }

 private:
  const Json& field(const std::string& name, const Json& entry, const char* key) const {
    const auto found = entry.find(key);
    if (found == entry.end()) bad(name, std::string("no '") + key + "' field");
    return *found;
  }

  [[noreturn]] void bad(const std::string& name, const std::string& cause) const {
    fail(source_.name(), "safetensors: tensor '" + name + "': " + cause);
  }

  const checkpoint_io::ByteSource& source_;
  std::uint64_t data_start_;
  std::uint64_t data_size_;
};

}  // namespace

bool has_safetensors_signature(const checkpoint_io::ByteSource& source) {
  if (source.size() < 9) return false;
  // A lying length still counts as safetensors, so that it gets a precise error later.
  if (header_length(source) < 2) return false;
  std::array<std::uint8_t, 1> first{};
  source.read(8, first, "safetensors header");
  return first[0] == '{';
}

CheckpointDict read_safetensors(const checkpoint_io::ByteSource& source) {
  const std::uint64_t length = header_length(source);
  if (length > kMaxHeaderSize)
    fail(source.name(), "safetensors: header length " + std::to_string(length) + " exceeds the 100 MB limit");
  if (!source.contains(8, length))
    fail(source.name(), "truncated: safetensors header of " + std::to_string(length) + " bytes but the file has " +
                            std::to_string(source.size()));
  const auto text = source.read_vector(8, length, "safetensors header");
  Json header;
  try {
    header = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& error) {
    fail(source.name(), std::string("safetensors: malformed JSON header: ") + error.what());
  }
  if (!header.is_object()) fail(source.name(), "safetensors: header is not a JSON object");

  const TensorReader reader(source, 8 + length);
  CheckpointDict tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    tensors.items.emplace_back(name, CheckpointObject(reader.read(name, entry)));
  }
  return tensors;
}

}  // namespace heygem::models
