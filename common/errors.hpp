#pragma once
// Errors are exceptions inside the daemon and result codes at the socket (ISC Kea style).
#include <stdexcept>
#include <string>
#include <string_view>

namespace heygem {

// Stable codes that cross the socket; the CLI maps them to exit codes.
enum class ErrorCode {
  invalid_argument,   // a request or option is malformed
  invalid_input,      // a media file or checkpoint is unreadable or wrong
  not_found,          // no such job or model
  permission_denied,  // another uid's job
  protocol,           // malformed frame, wrong version, unknown type
  resource,           // out of memory, disk full, budget exceeded
  cancelled,
  internal,
};

std::string_view to_string(ErrorCode code);
ErrorCode error_code_from_string(std::string_view text);  // unknown text -> internal

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace heygem
