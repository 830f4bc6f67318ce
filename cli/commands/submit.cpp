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

}  // namespace

SubmitPlan plan_submit(const SubmitArgs& args, const std::filesystem::path& cwd) {
  if (args.videos.size() > protocol::kMaxItems)
    throw CliError(ExitCode::usage, "at most " + std::to_string(protocol::kMaxItems) + " videos per job, not " +
                                        std::to_string(args.videos.size()));
  SubmitPlan plan;
  std::vector<std::filesystem::path> videos(args.videos.begin(), args.videos.end());
  plan.request.audio_name = display_name(args.audio, "--audio");
  for (const auto& video : videos) plan.request.item_names.push_back(display_name(video, "video"));
  if (!args.detach || !args.output.empty()) plan.outputs = plan_outputs(videos, args.output, cwd);
  for (const auto& output : plan.outputs) plan.request.output_names.push_back(display_name(output, "output"));
  plan.request.options = args.options;
  plan.request.fds = plan.request.expected_fds();
  return plan;
}

int run_submit(const Invocation& invocation, Io& io) {
  const SubmitArgs& args = invocation.submit;
  const SubmitPlan plan = plan_submit(args, io.cwd);

  // Everything local first, so nothing is submitted when a file is missing or an output exists.
  std::vector<UniqueFd> inputs;
  inputs.push_back(open_input(io.cwd / args.audio));
  for (const auto& video : args.videos) inputs.push_back(open_input(io.cwd / video));
  std::vector<OutputFile> outputs;
  for (const auto& path : plan.outputs) outputs.push_back(OutputFile::create(path, args.force));

  std::vector<int> fds;
  for (const auto& fd : inputs) fds.push_back(fd.get());
  for (const auto& output : outputs) fds.push_back(output.fd());

  Client client = connect_client(invocation, io);
  const auto submitted = expect<protocol::SubmittedResponse>(client.call(plan.request, fds), "submit");
  inputs.clear();
  for (auto& output : outputs) output.close_fd();  // the daemon holds its own copies now

  const render::Mode mode = output_mode(invocation, io);
  if (args.detach) {
    for (auto& output : outputs) output.keep();  // the daemon writes them later
    if (mode == render::Mode::json) print_json(io.out, submitted);
    else if (mode != render::Mode::quiet) io.out << submitted.job_id << '\n';
    return to_int(ExitCode::ok);
  }

  std::vector<std::string> labels;
  for (const auto& path : plan.outputs) labels.push_back(path.string());
  auto view = render::make_progress_view(mode, io.out, labels);
  view->submitted(submitted);
  try {
    const auto terminal = follow_job(client, submitted.job_id, *view, [&](const protocol::ItemDoneEvent& done) {
      const auto index = static_cast<std::size_t>(done.item);
      if (done.output == protocol::OutputPlace::fd && index < outputs.size()) outputs[index].keep();
    });
    // Outputs of items that did not finish into their fd are removed as `outputs` goes.
    return to_int(exit_code_for(terminal.body));
  } catch (...) {
    // We lost track of a job that lives on in the daemon and may still write these files.
    for (auto& output : outputs) output.keep();
    throw;
  }
}

}  // namespace heygem::cli
