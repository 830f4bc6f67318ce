#pragma once
// heygemctl's command line: every command and option, parsed with CLI11 into an Invocation.
#include <iosfwd>
#include <string>
#include <variant>
#include <vector>

#include "common/protocol.hpp"

namespace heygem::cli {

enum class Command { submit, status, list, watch, wait, cancel, fetch, logs, models, ping, version, reload, workers };

struct GlobalOptions {
  std::string socket;  // --socket, "" = HEYGEM_SOCKET or the default
  std::string cluster;  // --cluster redis://HOST[:PORT] (or $HEYGEM_CLUSTER): a Redis Streams cluster, not a daemon
  bool json = false;
  bool quiet = false;
  double timeout_s = 0;  // --timeout: give up when heygemd does not answer a request in this long (0 = never)
};

struct SubmitArgs {
  std::string audio;
  std::vector<std::string> videos;
  std::string output;  // -o FILE|DIR, "" = none
  bool detach = false;
  bool force = false;
  bool inline_inputs = false;  // --inline (cluster): the inputs travel inside Redis, not as paths
  protocol::SubmitOptions options;
};

struct Invocation {
  Command command = Command::ping;
  GlobalOptions global;
  SubmitArgs submit;
  std::string job_id;  // status (optional), watch, wait, cancel, fetch, logs
  bool all = false;    // list --all
  std::string output;  // fetch -o
  bool force = false;  // fetch --force
  std::string model_action;  // models load|unload ("" = the table)
  std::string model_name;
};

// Either what to run, or the exit code to end with now (help printed: 0; bad usage: 2, with the
// message already written to `err`).
using ParseResult = std::variant<Invocation, int>;

ParseResult parse_command_line(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// The full --help text of the program and of one command ("" = the program).
std::string help_text(const std::string& command = "");

}  // namespace heygem::cli
