#pragma once
// A failure on heygemctl's side (not reported by the daemon), with the exit code it ends in.
#include <stdexcept>
#include <string>

#include "cli/lib/exit_codes.hpp"

namespace heygem::cli {

class CliError : public std::runtime_error {
 public:
  CliError(ExitCode exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  ExitCode exit_code() const noexcept { return exit_code_; }

 private:
  ExitCode exit_code_;
};

}  // namespace heygem::cli
