#pragma once
// Reads PyTorch checkpoints without Python: the legacy pickle format (torch < 1.6), the zip format
// (torch >= 1.6) and safetensors. Only the pickle subset that state dicts use is accepted; nothing
// in a file is ever executed. The format is recognised from the content, not the file name.
#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace heygem::models {

// A state dict in file order: name -> tensor (CPU). Order matters for hash-init and diagnostics.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

class CheckpointObject;

// Python list.
using CheckpointList = std::vector<CheckpointObject>;

// Python tuple (kept apart from lists so that a file's structure can be checked exactly).
struct CheckpointTuple {
  std::vector<CheckpointObject> items;
};

// Python dict keys that checkpoints use: str or int.
using CheckpointKey = std::variant<std::string, std::int64_t>;

// Python dict / collections.OrderedDict, in insertion order, keys unique.
struct CheckpointDict {
  std::vector<std::pair<CheckpointKey, CheckpointObject>> items;

  const CheckpointObject* find(std::string_view key) const;  // nullptr when absent
  const CheckpointObject* find(std::int64_t key) const;
};

// The object tree a checkpoint holds: None, bool, int, float, str, list, tuple, dict or tensor.
// Tensors that shared a storage in the file share it here too (views keep offset and strides).
class CheckpointObject {
 public:
  using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string, CheckpointList,
                             CheckpointTuple, CheckpointDict, at::Tensor>;

  CheckpointObject() = default;
  explicit CheckpointObject(Value value) : value_(std::move(value)) {}

  const Value& value() const { return value_; }
  bool is_none() const { return std::holds_alternative<std::monostate>(value_); }
  template <class T>
  bool is() const {
    return std::holds_alternative<T>(value_);
  }
  // The held value; throws heygem::Error(invalid_input) naming both kinds when it is another kind.
  template <class T>
  const T& as() const {
    if (const T* held = std::get_if<T>(&value_)) return *held;
    throw_kind_mismatch(kind_name_for<T>());
  }
  // "None", "bool", "int", "float", "str", "list", "tuple", "dict" or "tensor".
  std::string_view kind_name() const { return kind_name_of(value_); }

 private:
  template <class T>
  static constexpr std::string_view kind_name_for() {
    if constexpr (std::is_same_v<T, std::monostate>) return "None";
    else if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "int";
    else if constexpr (std::is_same_v<T, double>) return "float";
    else if constexpr (std::is_same_v<T, std::string>) return "str";
    else if constexpr (std::is_same_v<T, CheckpointList>) return "list";
    else if constexpr (std::is_same_v<T, CheckpointTuple>) return "tuple";
    else if constexpr (std::is_same_v<T, CheckpointDict>) return "dict";
    else return "tensor";
  }
  static std::string_view kind_name_of(const Value& value);
  [[noreturn]] void throw_kind_mismatch(std::string_view wanted) const;

  Value value_;
};

// Reads any supported checkpoint file into its object tree. Safetensors files give a dict of
// tensors in header order (their "__metadata__" is not part of the tree). Throws
// heygem::Error(invalid_input, "<file>: <cause>") for a missing, truncated or malformed file.
CheckpointObject read_checkpoint(const std::filesystem::path& file);

// The same from bytes in memory; `name` stands for the file in error messages (fuzzing, tests).
CheckpointObject read_checkpoint_bytes(std::span<const std::uint8_t> bytes, std::string_view name);

// Loads the state dict of a checkpoint file, tensors in file order. Unwraps {"state_dict": ...}
// layouts and, like Wav2Lip's load_model, removes "module." wherever it occurs in a key
// (str.replace), which also strips the DataParallel prefix. Two keys that become equal, or an
// entry that is not a tensor, are errors. Throws heygem::Error(invalid_input) naming the file and
// the exact cause.
StateDict load_state_dict(const std::filesystem::path& file);

// The state-dict extraction of load_state_dict applied to an object already read; `name` stands
// for the file in error messages.
StateDict state_dict_from(const CheckpointObject& checkpoint, std::string_view name);

}  // namespace heygem::models
