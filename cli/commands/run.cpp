#include "cli/commands/commands.hpp"

#include <cstdlib>
#include <ostream>

#include "cli/lib/cli_error.hpp"
#include "cli/render/format.hpp"
#include "common/version.hpp"

namespace heygem::cli {

int run(int argc, const char* const* argv, Io& io) {
  const ParseResult parsed = parse_command_line(argc, argv, io.out, io.err);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  try {
    auto invocation = std::get<Invocation>(parsed);
    if (invocation.global.cluster.empty() && invocation.global.socket.empty())
      if (const char* cluster = std::getenv("HEYGEM_CLUSTER"); cluster && *cluster) invocation.global.cluster = cluster;
    return execute(invocation, io);
  } catch (const CliError& error) {
    io.err << "heygemctl: " << render::printable(error.what()) << '\n';
    return to_int(error.exit_code());
  } catch (const Error& error) {
    io.err << "heygemctl: " << render::printable(error.what()) << '\n';
    return to_int(exit_code_for(error.code()));
  } catch (const std::exception& error) {
    io.err << "heygemctl: internal error: " << error.what() << '\n';
    return to_int(ExitCode::internal);
  }
}

int execute(const Invocation& invocation, Io& io) {
  if (!invocation.global.cluster.empty()) return execute_cluster(invocation, io);
  switch (invocation.command) {
    case Command::workers: throw CliError(ExitCode::usage, "workers: only with --cluster URL (or $HEYGEM_CLUSTER)");
    case Command::submit: return run_submit(invocation, io);
    case Command::status: return run_status(invocation, io);
    case Command::list: return run_list(invocation, io);
    case Command::watch: return run_watch(invocation, io);
    case Command::wait: return run_wait(invocation, io);
    case Command::cancel: return run_cancel(invocation, io);
    case Command::fetch: return run_fetch(invocation, io);
    case Command::logs: return run_logs(invocation, io);
    case Command::models: return run_models(invocation, io);
    case Command::ping: return run_ping(invocation, io);
    case Command::version: return run_version(invocation, io);
    case Command::reload: return run_reload(invocation, io);
  }
  throw CliError(ExitCode::internal, "unknown command");
}

ExitCode exit_code_for(const protocol::EventBody& terminal) {
  if (std::holds_alternative<protocol::DoneEvent>(terminal)) return ExitCode::ok;
  if (std::holds_alternative<protocol::CancelledEvent>(terminal)) return ExitCode::cancelled;
  if (std::holds_alternative<protocol::FailedEvent>(terminal)) return ExitCode::job_failed;
  throw Error(ErrorCode::protocol, "'" + std::string(protocol::event_name(terminal)) + "' does not end a job");
}

Client connect_client(const Invocation& invocation, const Io& io) {
  std::optional<std::chrono::milliseconds> timeout;
  if (invocation.global.timeout_s > 0)
    timeout = std::chrono::milliseconds(static_cast<std::int64_t>(invocation.global.timeout_s * 1000.0 + 0.5));
  return Client::connect(client_socket_candidates(invocation.global.socket, io.env),
                         "heygemctl " + std::string(heygem_version()), timeout);
}

render::Mode output_mode(const Invocation& invocation, const Io& io) {
  return render::choose_mode(invocation.global.json, invocation.global.quiet, io.out_is_tty);
}

protocol::JobEvent follow_job(Client& client, const std::string& job_id, render::ProgressView& view,
                              const std::function<void(const protocol::ItemDoneEvent&)>& on_item_done) {
  client.send(protocol::WatchRequest{job_id});
  view.snapshot(expect<protocol::JobStatus>(client.receive_answer(), "watch"));
  while (true) {
    auto event = expect<protocol::JobEvent>(client.receive(), "watch");
    if (event.job_id != job_id)
      throw Error(ErrorCode::protocol, "event for job " + event.job_id + " while watching " + job_id);
    if (const auto* done = std::get_if<protocol::ItemDoneEvent>(&event.body); done && on_item_done) on_item_done(*done);
    view.event(event);
    if (protocol::is_terminal(event.body)) return event;
  }
}

void report_quietly(Io& io, const protocol::JobEvent& terminal) {
  io.err << "heygemctl: " << render::describe_terminal(terminal) << '\n';
}

void print_json(std::ostream& out, const protocol::Response& response) {
  out << protocol::encode(response) << '\n' << std::flush;
}

}  // namespace heygem::cli
