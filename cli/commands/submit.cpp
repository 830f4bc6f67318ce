#include <ostream>

#include "cli/commands/commands.hpp"
#include "cli/lib/cli_error.hpp"
#include "cli/lib/local_files.hpp"

namespace heygem::cli {
namespace {

std::string display_name(const std::filesystem::path& path, const char* what) {
  const std::string name = path.filename().string();
  if (name.empty()) throw CliError(ExitCode::usage, std::string(what) + " '" + path.string() + "' names no file");
  return name;
}

// What a user whose attached submit lost the daemon needs to know: the job is not gone.
std::string lost_job_advice(const std::string& job_id, const std::vector<std::filesystem::path>& outputs) {
  std::string fetch = "heygemctl wait " + job_id + " && heygemctl fetch " + job_id + " -o ";
  fetch += outputs.size() == 1 ? outputs.front().string() : outputs.front().parent_path().string() + "/";
  return "; job " + job_id + " is kept by heygemd and runs again if heygemd restarted; nothing was written to -o. " +
         "Its results will wait in the spool: " + fetch;
}

}  // namespace

SubmitPlan plan_submit(const SubmitArgs& args, const std::filesystem::path& cwd) {
  if (args.videos.size() > protocol::kMaxItems)
    throw CliError(ExitCode::usage, "at most " + std::to_string(protocol::kMaxItems) + " videos per job, not " +
                                        std::to_string(args.videos.size()));
  if (args.detach && !args.output.empty())
    throw CliError(ExitCode::usage,
                   "--detach cannot take -o: only heygemctl writes your files, and it returns at once. Submit with "
                   "--detach alone, then `heygemctl wait JOB && heygemctl fetch JOB -o " +
                       args.output + "`, or submit without --detach to wait for the result");
  SubmitPlan plan;
  std::vector<std::filesystem::path> videos(args.videos.begin(), args.videos.end());
  plan.request.audio_name = display_name(args.audio, "--audio");
  for (const auto& video : videos) plan.request.item_names.push_back(display_name(video, "video"));
  if (!args.detach) plan.outputs = plan_outputs(videos, args.output, cwd);
  for (const auto& output : plan.outputs) plan.request.output_names.push_back(display_name(output, "output"));
  plan.request.options = args.options;
  plan.request.fds = plan.request.expected_fds();
  return plan;
}

int run_submit(const Invocation& invocation, Io& io) {
  const SubmitArgs& args = invocation.submit;
  const SubmitPlan plan = plan_submit(args, io.cwd);

  // Everything local first, so nothing is submitted when a file is missing, an output exists or an
  // output is one of the inputs; and nothing is opened for writing before those checks.
  std::vector<UniqueFd> inputs;
  std::vector<std::pair<std::string, FileIdentity>> input_identities;
  inputs.push_back(open_input(io.cwd / args.audio));
  input_identities.emplace_back("the audio " + args.audio, identity_of(inputs.back().get()));
  for (const auto& video : args.videos) {
    inputs.push_back(open_input(io.cwd / video));
    input_identities.emplace_back("the video " + video, identity_of(inputs.back().get()));
  }
  refuse_aliased_outputs(plan.outputs, input_identities);
  CreatedFolder folder = args.detach ? CreatedFolder{} : CreatedFolder::for_target(args.output, io.cwd);
  std::vector<OutputFile> outputs;
  for (const auto& path : plan.outputs) outputs.push_back(OutputFile::create(path, args.force));

  std::vector<int> fds;
  for (const auto& fd : inputs) fds.push_back(fd.get());
  for (const auto& output : outputs) fds.push_back(output.fd());

  Client client = connect_client(invocation, io);
  const auto submitted = expect<protocol::SubmittedResponse>(client.call(plan.request, fds), "submit");
  inputs.clear();

  const render::Mode mode = output_mode(invocation, io);
  if (args.detach) {
    if (mode == render::Mode::json) print_json(io.out, submitted);
    else if (mode != render::Mode::quiet) io.out << submitted.job_id << '\n';
    return to_int(ExitCode::ok);
  }

  std::vector<std::string> labels;
  for (const auto& path : plan.outputs) labels.push_back(path.string());
  auto view = render::make_progress_view(mode, io.out, labels);
  view->submitted(submitted);
  std::string publish_error;
  try {
    const auto terminal = follow_job(client, submitted.job_id, *view, [&](const protocol::ItemDoneEvent& done) {
      const auto index = static_cast<std::size_t>(done.item);
      if (done.output != protocol::OutputPlace::fd || index >= outputs.size()) return;
      try {
        outputs[index].publish();
      } catch (const CliError& error) {
        if (publish_error.empty()) publish_error = error.what();
        io.err << "heygemctl: " << error.what() << '\n';
      }
    });
    // Outputs of items that did not finish into their fd never appear (see OutputFile).
    const ExitCode code = exit_code_for(terminal.body);
    if (mode == render::Mode::quiet && code != ExitCode::ok) report_quietly(io, terminal);
    if (code == ExitCode::ok && !publish_error.empty()) return to_int(ExitCode::local_file);
    return to_int(code);
  } catch (const CliError& error) {
    if (error.exit_code() != ExitCode::unreachable) throw;
    throw CliError(ExitCode::unreachable, error.what() + lost_job_advice(submitted.job_id, plan.outputs));
  }
}

}  // namespace heygem::cli
