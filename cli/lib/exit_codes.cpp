#include "cli/lib/exit_codes.hpp"

namespace heygem::cli {

ExitCode exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return ExitCode::usage;
    case ErrorCode::invalid_input: return ExitCode::job_failed;
    case ErrorCode::not_found:
    case ErrorCode::permission_denied: return ExitCode::not_found;
    case ErrorCode::protocol: return ExitCode::protocol;
    case ErrorCode::resource: return ExitCode::resource;
    case ErrorCode::cancelled: return ExitCode::cancelled;
    case ErrorCode::internal: return ExitCode::internal;
  }
  return ExitCode::internal;
}

std::string exit_codes_help() {
  std::string text = "EXIT CODES:\n";
  for (const auto& entry : kExitCodes)
    text += "  " + std::to_string(to_int(entry.code)) + "  " + std::string(entry.meaning) + "\n";
  return text;
}

}  // namespace heygem::cli
