// Commands about jobs: status, list, watch, wait, cancel, fetch, logs.
#include <algorithm>
#include <iterator>
#include <ostream>

#include "cli/commands/commands.hpp"
#include "cli/lib/cli_error.hpp"
#include "cli/lib/local_files.hpp"
#include "cli/render/format.hpp"
#include "cli/render/tables.hpp"

namespace heygem::cli {
namespace {

bool json_mode(const Invocation& invocation) { return invocation.global.json; }

// The spooled items of a job and the files they go to. Throws CliError when there is nothing to
// fetch or -o cannot hold them.
struct FetchPlan {
  std::vector<int> items;
  std::vector<std::filesystem::path> outputs;
};

FetchPlan plan_fetch(const protocol::JobStatus& job, const std::string& target, const std::filesystem::path& cwd) {
  FetchPlan plan;
  std::vector<std::filesystem::path> names;
  for (std::size_t i = 0; i < job.items.size(); ++i) {
    if (!job.items[i].in_spool) continue;
    plan.items.push_back(static_cast<int>(i));
    names.emplace_back(job.items[i].name);
  }
  if (plan.items.empty())
    throw CliError(ExitCode::not_found, "job " + job.job_id + " (" + std::string(protocol::to_string(job.state)) +
                                            ") has no results in the spool" +
                                            (protocol::is_finished(job.state) ? "" : " yet"));
  plan.outputs = plan_outputs(names, target, cwd);
  return plan;
}

}  // namespace

int run_status(const Invocation& invocation, Io& io) {
  if (invocation.job_id.empty()) return run_list(invocation, io);
  Client client = connect_client(invocation, io);
  const auto job = expect<protocol::JobStatus>(client.call(protocol::StatusRequest{invocation.job_id}), "status");
  if (json_mode(invocation)) print_json(io.out, job);
  else if (!invocation.global.quiet) io.out << render::job_details(job);
  return to_int(ExitCode::ok);
}

int run_list(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  auto list = expect<protocol::ListResponse>(client.call(protocol::ListRequest{invocation.all}), "list");
  // A long listing comes in parts: --json prints each as it comes (one line each), the table waits
  // for all of them.
  if (json_mode(invocation)) print_json(io.out, list);
  for (bool more = list.more; more;) {
    auto part = expect<protocol::ListResponse>(client.receive(), "list");
    more = part.more;
    if (json_mode(invocation)) print_json(io.out, part);
    else std::move(part.jobs.begin(), part.jobs.end(), std::back_inserter(list.jobs));
  }
  if (!json_mode(invocation) && !invocation.global.quiet) io.out << render::job_table(list);
  return to_int(ExitCode::ok);
}

int run_watch(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  auto view = render::make_progress_view(output_mode(invocation, io), io.out);
  const auto terminal = follow_job(client, invocation.job_id, *view);
  const ExitCode code = exit_code_for(terminal.body);
  if (output_mode(invocation, io) == render::Mode::quiet && code != ExitCode::ok) report_quietly(io, terminal);
  return to_int(code);
}

int run_wait(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto terminal = expect<protocol::JobEvent>(client.call(protocol::WaitRequest{invocation.job_id}), "wait");
  if (!protocol::is_terminal(terminal.body))
    throw Error(ErrorCode::protocol, "wait answered with '" + std::string(protocol::event_name(terminal.body)) + "'");
  if (json_mode(invocation)) print_json(io.out, terminal);
  else if (!invocation.global.quiet) io.out << render::describe_terminal(terminal) << '\n';
  else if (exit_code_for(terminal.body) != ExitCode::ok) report_quietly(io, terminal);
  return to_int(exit_code_for(terminal.body));
}

int run_cancel(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto job = expect<protocol::JobStatus>(client.call(protocol::CancelRequest{invocation.job_id}), "cancel");
  if (json_mode(invocation)) print_json(io.out, job);
  else if (!invocation.global.quiet) {
    if (job.state == protocol::JobState::cancelled) io.out << "job " << job.job_id << " cancelled\n";
    else io.out << "job " << job.job_id << " is " << protocol::to_string(job.state) << "; cancel requested\n";
  }
  return to_int(ExitCode::ok);
}

int run_fetch(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto job = expect<protocol::JobStatus>(client.call(protocol::StatusRequest{invocation.job_id}), "status");
  const FetchPlan plan = plan_fetch(job, invocation.output, io.cwd);
  refuse_aliased_outputs(plan.outputs, {});
  CreatedFolder folder = CreatedFolder::for_target(invocation.output, io.cwd);
  std::vector<OutputFile> outputs;
  std::vector<int> fds;
  for (const auto& path : plan.outputs) {
    outputs.push_back(OutputFile::create(path, invocation.force));
    fds.push_back(outputs.back().fd());
  }
  const protocol::FetchRequest request{invocation.job_id, plan.items, static_cast<int>(plan.items.size())};
  const auto fetched = expect<protocol::FetchedResponse>(client.call(request, fds), "fetch");
  for (const auto& item : fetched.items) {
    for (std::size_t i = 0; i < plan.items.size(); ++i) {
      if (plan.items[i] != item.item) continue;
      outputs[i].publish();
      if (!json_mode(invocation) && !invocation.global.quiet)
        io.out << "wrote " << plan.outputs[i].string() << " (" << render::format_bytes(item.bytes) << ")\n";
    }
  }
  if (json_mode(invocation)) print_json(io.out, fetched);
  return to_int(ExitCode::ok);
}

int run_logs(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto logs = expect<protocol::LogsResponse>(client.call(protocol::LogsRequest{invocation.job_id}), "logs");
  if (json_mode(invocation)) {
    print_json(io.out, logs);
  } else if (!invocation.global.quiet) {
    if (logs.truncated) io.err << "heygemctl: the log is long; showing its end\n";
    const auto text = render::printable(logs.text, true);  // the log quotes names and causes
    io.out << text;
    if (!text.empty() && text.back() != '\n') io.out << '\n';
  }
  return to_int(ExitCode::ok);
}

}  // namespace heygem::cli
