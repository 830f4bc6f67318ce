#include "common/errors.hpp"

#include <array>
#include <utility>

namespace heygem {
namespace {
constexpr std::array<std::pair<ErrorCode, std::string_view>, 8> kNames{{
    {ErrorCode::invalid_argument, "invalid_argument"},
    {ErrorCode::invalid_input, "invalid_input"},
    {ErrorCode::not_found, "not_found"},
    {ErrorCode::permission_denied, "permission_denied"},
    {ErrorCode::protocol, "protocol"},
    {ErrorCode::resource, "resource"},
    {ErrorCode::cancelled, "cancelled"},
    {ErrorCode::internal, "internal"},
}};
}  // namespace

std::string_view to_string(ErrorCode code) {
  for (const auto& [c, name] : kNames)
    if (c == code) return name;
  return "internal";
}

ErrorCode error_code_from_string(std::string_view text) {
  for (const auto& [c, name] : kNames)
    if (name == text) return c;
  return ErrorCode::internal;
}

}  // namespace heygem
