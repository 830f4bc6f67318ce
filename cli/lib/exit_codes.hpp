#pragma once
// heygemctl's exit codes: the one table, shown in --help and the man page.
#include <array>
#include <string>
#include <string_view>

#include "common/errors.hpp"

namespace heygem::cli {

enum class ExitCode : int {
  ok = 0,           // the command succeeded; for submit/wait/watch: the job is done
  job_failed = 1,   // the job failed, or the daemon could not use an input file
  usage = 2,        // bad command line, or options the daemon rejected
  unreachable = 3,  // no daemon at the socket, or the connection was lost
  cancelled = 4,    // the job was cancelled
  not_found = 5,    // no such job (or not yours), or permission denied
  protocol = 6,     // protocol error or version mismatch between heygemctl and heygemd
  local_file = 7,   // an input cannot be read, or an output exists (without --force) or cannot be created
  resource = 8,     // the daemon ran out of a resource (disk, memory, model budget)
  internal = 9,     // an internal error in heygemd or heygemctl
};

struct ExitCodeInfo {
  ExitCode code;
  std::string_view name;
  std::string_view meaning;
};

inline constexpr std::array<ExitCodeInfo, 10> kExitCodes{{
    {ExitCode::ok, "ok", "success; for submit, wait and watch: the job is done"},
    {ExitCode::job_failed, "job_failed", "the job failed, or the daemon could not use an input file"},
    {ExitCode::usage, "usage", "bad command line, or options the daemon rejected"},
    {ExitCode::unreachable, "unreachable", "no daemon at the socket, or the connection was lost"},
    {ExitCode::cancelled, "cancelled", "the job was cancelled"},
    {ExitCode::not_found, "not_found", "no such job (or not yours), or permission denied"},
    {ExitCode::protocol, "protocol", "protocol error or version mismatch between heygemctl and heygemd"},
    {ExitCode::local_file, "local_file",
     "an input cannot be read, or an output exists (use --force) or cannot be created; nothing was submitted"},
    {ExitCode::resource, "resource", "the daemon ran out of a resource (disk, memory, model budget)"},
    {ExitCode::internal, "internal", "internal error in heygemd or heygemctl"},
}};

inline int to_int(ExitCode code) { return static_cast<int>(code); }

// The exit code for an error the daemon reported (or the protocol layer raised).
ExitCode exit_code_for(ErrorCode code);

// The "EXIT CODES" section of --help.
std::string exit_codes_help();

}  // namespace heygem::cli
