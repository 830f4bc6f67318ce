// heygemctl --cluster: the job commands against a Redis Streams cluster instead of the local daemon.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include "cli/cluster/cluster_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/lib/cli_error.hpp"
#include "cli/lib/local_files.hpp"
#include "cli/render/format.hpp"
#include "cli/render/tables.hpp"
#include "common/job_id.hpp"

namespace heygem::cli {
namespace {

constexpr std::uint64_t kMaxInlineBytes = 16ULL << 20;  // the workers' default cluster.max_inline_bytes
constexpr std::chrono::seconds kInlineTtl{24 * 3600};

std::string environment(const char* name, const char* fallback = "") {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

ClusterTarget target_for(const Invocation& invocation) {
  ClusterTarget target;
  target.address = invocation.global.cluster;
  target.password_file = environment("HEYGEM_REDIS_PASSWORD_FILE");
  target.names.stream = environment("HEYGEM_CLUSTER_STREAM", "heygem:jobs");
  target.names.group = environment("HEYGEM_CLUSTER_GROUP", "heygem");
  target.names.dead_letter = environment("HEYGEM_CLUSTER_DEAD_LETTER", "heygem:dead");
  return target;
}

std::string read_whole(const std::filesystem::path& path) {
  UniqueFd fd = open_input(path);
  std::string data;
  char buffer[1 << 16];
  for (;;) {
    const auto n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw CliError(ExitCode::local_file, "cannot read " + path.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > kMaxInlineBytes)
      throw CliError(ExitCode::local_file, path.string() + " is larger than " + render::format_bytes(kMaxInlineBytes) +
                                               ": too large for --inline; put it on the shared storage and name its path");
  }
  return data;
}

int cluster_submit(const Invocation& invocation, Io& io, ClusterClient& client) {
  const SubmitArgs& args = invocation.submit;
  if (args.videos.size() > protocol::kMaxItems)
    throw CliError(ExitCode::usage, "at most " + std::to_string(protocol::kMaxItems) + " videos per job");
  cluster::ClusterJobSpec spec;
  spec.job_id = new_job_id();
  spec.options = args.options;
  std::vector<std::string> inline_data;
  const auto reference = [&](const std::string& given) {
    const auto path = (io.cwd / given).lexically_normal();
    cluster::MediaRef ref;
    ref.name = path.filename().string();
    if (args.inline_inputs) {
      inline_data.push_back(read_whole(path));
      ref.inline_bytes = inline_data.back().size();
    } else {
      inline_data.emplace_back();
      ref.path = path.string();
    }
    return ref;
  };
  spec.audio = reference(args.audio);
  std::vector<std::filesystem::path> videos;
  for (const auto& video : args.videos) {
    spec.videos.push_back(reference(video));
    videos.emplace_back(video);
  }
  for (const auto& output : plan_outputs(videos, args.output, io.cwd)) {
    const auto path = std::filesystem::absolute(io.cwd / output).lexically_normal();
    std::error_code ec;
    if (!args.force && std::filesystem::exists(path, ec))
      throw CliError(ExitCode::local_file, path.string() + " exists (use --force to overwrite)");
    spec.outputs.push_back(path.string());
  }
  try {  // the worker's checks, here first: a bad path is a usage error before anything is queued
    spec = cluster::parse_job_spec(cluster::to_json(spec).dump());
  } catch (const Error& e) {
    throw CliError(ExitCode::usage, e.what());
  }
  client.submit(spec, inline_data, kInlineTtl);
  const protocol::SubmittedResponse submitted{spec.job_id, static_cast<int>(spec.videos.size())};
  const render::Mode mode = output_mode(invocation, io);
  if (args.detach) {
    if (mode == render::Mode::json) print_json(io.out, submitted);
    else if (mode != render::Mode::quiet) io.out << submitted.job_id << '\n';
    return to_int(ExitCode::ok);
  }
  auto view = render::make_progress_view(mode, io.out, spec.outputs);
  view->submitted(submitted);
  const auto terminal = client.follow(spec.job_id, view.get());
  const ExitCode code = exit_code_for(terminal.body);
  if (mode == render::Mode::quiet && code != ExitCode::ok) report_quietly(io, terminal);
  return to_int(code);
}

int cluster_fetch(const Invocation& invocation, Io& io, ClusterClient& client) {
  const auto job = client.status(invocation.job_id);
  if (job.state != protocol::JobState::done)
    throw CliError(ExitCode::not_found, "job " + job.job_id + " (" + std::string(protocol::to_string(job.state)) +
                                            ") has no results" + (protocol::is_finished(job.state) ? "" : " yet"));
  const auto spec = client.spec(invocation.job_id);
  std::vector<std::filesystem::path> names;
  for (const auto& video : spec.videos) names.emplace_back(video.name);
  const auto targets = plan_outputs(names, invocation.output, io.cwd);
  CreatedFolder folder = CreatedFolder::for_target(invocation.output, io.cwd);
  protocol::FetchedResponse fetched{job.job_id, {}};
  for (std::size_t i = 0; i < targets.size(); ++i) {
    UniqueFd source = open_input(spec.outputs[i]);  // the shared storage, mounted here too
    auto output = OutputFile::create(targets[i], invocation.force);
    std::uint64_t bytes = 0;
    char buffer[1 << 16];
    for (;;) {
      const auto n = ::read(source.get(), buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CliError(ExitCode::local_file, "cannot read " + spec.outputs[i] + ": " + std::strerror(errno));
      if (n == 0) break;
      for (ssize_t done = 0; done < n;) {
        const auto w = ::write(output.fd(), buffer + done, static_cast<std::size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) throw CliError(ExitCode::local_file, "cannot write " + targets[i].string() + ": " + std::strerror(errno));
        done += w;
      }
      bytes += static_cast<std::uint64_t>(n);
    }
    output.publish();
    fetched.items.push_back({static_cast<int>(i), bytes});
    if (!invocation.global.json && !invocation.global.quiet)
      io.out << "wrote " << targets[i].string() << " (" << render::format_bytes(bytes) << ")\n";
  }
  if (invocation.global.json) print_json(io.out, fetched);
  return to_int(ExitCode::ok);
}

std::string age(long long ms) { return ms < 0 ? "-" : render::format_duration(static_cast<double>(ms) / 1000.0); }

std::string summary_text(const nlohmann::json& summary) {
  std::ostringstream out;
  const auto lag = summary["lag"].is_null() ? std::string("?") : std::to_string(summary["lag"].get<long long>());
  out << "stream " << summary["stream"].get<std::string>() << " (group " << summary["group"].get<std::string>()
      << "): " << lag << " waiting, " << summary["pending"].get<long long>() << " taken by workers, "
      << summary["entries"].get<long long>() << " entries kept\n";
  out << "dead letters (" << summary["dead_letter_stream"].get<std::string>()
      << "): " << summary["dead_letters"].get<long long>() << "\n";
  out << "workers: " << summary["workers"].size() << " (" << summary["workers_serving"].get<std::size_t>()
      << " serving)\n";
  return out.str();
}

std::string workers_table(const nlohmann::json& workers) {
  std::vector<std::vector<std::string>> rows{{"WORKER", "STATE", "RUNNING", "PENDING", "IDLE", "SLOTS", "HOST"}};
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& worker : workers) {
    std::string running;
    for (const auto& id : worker["running"]) running += (running.empty() ? "" : ",") + id.get<std::string>();
    const auto seen = worker.value("seen_ms", static_cast<long long>(-1));
    rows.push_back({worker.value("consumer", std::string("?")), worker.value("state", std::string("?")) + (seen > 0 ? " (" + age(now - seen) + " ago)" : ""),
                    running.empty() ? "-" : running, std::to_string(worker.value("pending", 0LL)),
                    age(worker.value("idle_ms", -1LL)), std::to_string(worker.value("slots", 0)), worker.value("host", std::string("-"))});
  }
  return render::format_table(rows);
}

}  // namespace

int execute_cluster(const Invocation& invocation, Io& io) {
  switch (invocation.command) {
    case Command::logs:
    case Command::models:
    case Command::reload:
      throw CliError(ExitCode::usage, "--cluster has no such command: a cluster job's log and models are on its worker "
                                      "(heygemctl --cluster workers names them; ask that box's heygemd)");
    default:
      break;
  }
  ClusterClient client(target_for(invocation));
  const bool json = invocation.global.json, quiet = invocation.global.quiet;
  switch (invocation.command) {
    case Command::submit: return cluster_submit(invocation, io, client);
    case Command::fetch: return cluster_fetch(invocation, io, client);
    case Command::status:
      if (invocation.job_id.empty()) {
        const auto summary = client.summary();
        if (json) io.out << summary.dump() << '\n';
        else if (!quiet) io.out << summary_text(summary);
        return to_int(ExitCode::ok);
      } else {
        const auto job = client.status(invocation.job_id);
        if (json) print_json(io.out, job);
        else if (!quiet) io.out << render::job_details(job);
        return to_int(ExitCode::ok);
      }
    case Command::list: {
      const protocol::ListResponse list{client.list(invocation.all), false};
      if (json) print_json(io.out, list);
      else if (!quiet) io.out << render::job_table(list);
      return to_int(ExitCode::ok);
    }
    case Command::workers: {
      const auto workers = client.workers();
      if (json) io.out << nlohmann::json{{"type", "workers"}, {"workers", workers}}.dump() << '\n';
      else if (!quiet) io.out << workers_table(workers);
      return to_int(ExitCode::ok);
    }
    case Command::watch: {
      auto view = render::make_progress_view(output_mode(invocation, io), io.out);
      const auto terminal = client.follow(invocation.job_id, view.get());
      const ExitCode code = exit_code_for(terminal.body);
      if (output_mode(invocation, io) == render::Mode::quiet && code != ExitCode::ok) report_quietly(io, terminal);
      return to_int(code);
    }
    case Command::wait: {
      const auto terminal = client.follow(invocation.job_id, nullptr);
      if (json) print_json(io.out, terminal);
      else if (!quiet) io.out << render::describe_terminal(terminal) << '\n';
      else if (exit_code_for(terminal.body) != ExitCode::ok) report_quietly(io, terminal);
      return to_int(exit_code_for(terminal.body));
    }
    case Command::cancel: {
      const auto job = client.cancel(invocation.job_id);
      if (json) print_json(io.out, job);
      else if (!quiet) {
        if (job.state == protocol::JobState::cancelled) io.out << "job " << job.job_id << " cancelled\n";
        else io.out << "job " << job.job_id << " is " << protocol::to_string(job.state) << "; cancel requested\n";
      }
      return to_int(ExitCode::ok);
    }
    case Command::ping:
      if (!quiet) io.out << "Redis at " << invocation.global.cluster << " answers\n";
      return to_int(ExitCode::ok);
    case Command::version:
      io.out << "heygemctl " << "(cluster wire format " << cluster::kWireVersion << ")\n";
      return to_int(ExitCode::ok);
    default:
      throw CliError(ExitCode::usage, "--cluster has no such command");
  }
}

}  // namespace heygem::cli
