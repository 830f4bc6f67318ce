#pragma once
// Running a parsed command against the daemon. Each returns the process's exit code; failures are
// thrown (CliError or heygem::Error) and turned into a message and an exit code by run().
#include <filesystem>
#include <functional>
#include <iosfwd>

#include "cli/commands/command_line.hpp"
#include "cli/lib/client.hpp"
#include "cli/lib/exit_codes.hpp"
#include "cli/render/progress.hpp"
#include "common/socket_path.hpp"

namespace heygem::cli {

// The process's surroundings, passed in so tests can state them.
struct Io {
  std::ostream& out;
  std::ostream& err;
  bool out_is_tty = false;
  SocketEnvironment env;
  std::filesystem::path cwd;
};

// The whole program: parse, execute, report errors. main() is just this.
int run(int argc, const char* const* argv, Io& io);

int execute(const Invocation& invocation, Io& io);

// The submit request for the parsed arguments (names are basenames, fds counted); `outputs` are
// the local output paths (empty with --detach and no -o). Throws CliError(usage).
struct SubmitPlan {
  protocol::SubmitRequest request;
  std::vector<std::filesystem::path> outputs;
};
SubmitPlan plan_submit(const SubmitArgs& args, const std::filesystem::path& cwd);

// The exit code a finished job ends in.
ExitCode exit_code_for(const protocol::EventBody& terminal);

// Commands.
int run_submit(const Invocation& invocation, Io& io);
int run_status(const Invocation& invocation, Io& io);
int run_list(const Invocation& invocation, Io& io);
int run_watch(const Invocation& invocation, Io& io);
int run_wait(const Invocation& invocation, Io& io);
int run_cancel(const Invocation& invocation, Io& io);
int run_fetch(const Invocation& invocation, Io& io);
int run_logs(const Invocation& invocation, Io& io);
int run_models(const Invocation& invocation, Io& io);
int run_ping(const Invocation& invocation, Io& io);
int run_version(const Invocation& invocation, Io& io);
int run_reload(const Invocation& invocation, Io& io);
// Every command against a Redis Streams cluster (--cluster, $HEYGEM_CLUSTER): cli/cluster.
int execute_cluster(const Invocation& invocation, Io& io);

// Shared by the commands.
Client connect_client(const Invocation& invocation, const Io& io);
render::Mode output_mode(const Invocation& invocation, const Io& io);
// Streams a watch: the snapshot, then events up to the terminal one, into `view`. Calls
// `on_item_done` for each finished item. Returns the terminal event.
protocol::JobEvent follow_job(Client& client, const std::string& job_id, render::ProgressView& view,
                              const std::function<void(const protocol::ItemDoneEvent&)>& on_item_done = {});
// With --quiet, a job that failed or was cancelled is still an error worth a line (cron mails it):
// "heygemctl: job ID failed: cause" on stderr.
void report_quietly(Io& io, const protocol::JobEvent& terminal);
// With --json: the message as one NDJSON line.
void print_json(std::ostream& out, const protocol::Response& response);

}  // namespace heygem::cli
