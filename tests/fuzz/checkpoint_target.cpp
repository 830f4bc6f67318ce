#include <ATen/Tensor.h>

#include <string>
#include <variant>

#include "common/errors.hpp"
#include "daemon/models/checkpoint.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace heygem::fuzz {
namespace {

// Tensors bigger than this are not copied (a stride-0 view may legally show many elements).
constexpr std::int64_t kMaxTouchedElements = std::int64_t{1} << 20;

// Reads every element of a tensor through its sizes, strides and offset, so that a view the reader
// built past the end of its storage shows up as a sanitizer report.
void touch(const at::Tensor& tensor) {
  if (!tensor.defined()) throw PropertyViolation("the reader returned an undefined tensor");
  if (tensor.numel() > kMaxTouchedElements) return;
  const at::Tensor copy = tensor.contiguous();
  (void)copy;
}

void walk(const models::CheckpointObject& object, int depth) {
  // The pickle reader bounds nesting (200 levels); a deeper tree means the bound was bypassed.
  if (depth > 1'000) throw PropertyViolation("object tree deeper than the reader allows");
  std::visit(
      [depth](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, at::Tensor>) {
          touch(value);
        } else if constexpr (std::is_same_v<T, models::CheckpointList>) {
          for (const auto& item : value) walk(item, depth + 1);
        } else if constexpr (std::is_same_v<T, models::CheckpointTuple>) {
          for (const auto& item : value.items) walk(item, depth + 1);
        } else if constexpr (std::is_same_v<T, models::CheckpointDict>) {
          for (const auto& [key, item] : value.items) walk(item, depth + 1);
        }
      },
      object.value());
}

}  // namespace

void checkpoint_input(Bytes input) {
  try {
    const models::CheckpointObject checkpoint = models::read_checkpoint_bytes(input, "fuzz.pth");
    walk(checkpoint, 0);
    for (const auto& [name, tensor] : models::state_dict_from(checkpoint, "fuzz.pth")) touch(tensor);
  } catch (const Error&) {
    // A clean rejection naming the file and the cause.
  }
}

}  // namespace heygem::fuzz
