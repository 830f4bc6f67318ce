#include "cli/commands/command_line.hpp"

#include <CLI/CLI.hpp>

#include <array>
#include <optional>
#include <ostream>
#include <sstream>

#include "cli/lib/exit_codes.hpp"
#include "common/job_id.hpp"
#include "common/version.hpp"

namespace heygem::cli {
namespace {

constexpr const char* kDescription =
    "heygemctl: talk to heygemd, the lip-sync daemon. Submit one audio with one or more videos (or stills);\n"
    "each video comes back with the mouth re-synced to the audio. heygemctl opens every file itself and\n"
    "passes descriptors: the daemon never opens a path you name.";

constexpr const char* kEnvironment =
    "ENVIRONMENT:\n"
    "  HEYGEM_SOCKET    the daemon's socket when --socket is not given\n"
    "  XDG_RUNTIME_DIR  a user's default socket is $XDG_RUNTIME_DIR/heygem/heygemd.sock; without it, and for\n"
    "                   root, /run/heygem/heygemd.sock (the system service, also tried when no user daemon runs)\n"
    "  HEYGEM_CLUSTER   a cluster's Redis (redis://[USER@]HOST[:PORT] or unix:/PATH) when neither --cluster nor --socket is given\n"
    "  HEYGEM_REDIS_PASSWORD_FILE  a file holding the cluster's Redis password (the user goes in the URL)\n"
    "  HEYGEM_CLUSTER_STREAM, HEYGEM_CLUSTER_GROUP, HEYGEM_CLUSTER_DEAD_LETTER  the cluster's names when not\n"
    "                   heygem:jobs, heygem, heygem:dead (as the workers' cluster: section)\n";

constexpr const char* kSubmitFooter =
    "OUTPUT: with one video, -o names the output file or a folder; with several, a folder. A path ending in\n"
    "'/' is a folder, created when missing. Each video's output is <video stem>.lipsync.mp4 in that folder,\n"
    "or in the current folder without -o. An existing output is refused unless --force; an output that is\n"
    "one of the inputs is always refused. An output appears only complete: a job that fails or is\n"
    "cancelled, or a daemon or heygemctl that dies, leaves nothing at the path (with --force, the old file).\n"
    "With --detach the results stay in the daemon's spool for `heygemctl fetch` (-o is refused).\n"
    "With --cluster the paths name files on the storage every worker mounts (under its cluster.media_roots);\n"
    "a worker writes each output there, complete or not at all, and -o also works with --detach.\n"
    "Without --detach, submit waits for the job and exits 0 (done), 1 (failed) or 4 (cancelled).";

// Options bound as plain values while parsing, turned into protocol options afterwards.
struct RawSubmit {
  std::string blend, loop, box, generator, detector, preset;
  double fps = 0;
  int crf = 0;
  bool strict = false, nosmooth = false, lossless = false, no_avatar_cache = false, no_silence_gate = false,
       enhance = false, no_enhance = false;
  CLI::Option *fps_option = nullptr, *crf_option = nullptr;
};

struct Parser {
  CLI::App app{kDescription, "heygemctl"};
  Invocation invocation;
  RawSubmit raw;
  std::vector<std::pair<Command, CLI::App*>> commands;

  CLI::App* command(Command id, const std::string& name, const std::string& description) {
    CLI::App* sub = app.add_subcommand(name, description);
    sub->fallthrough();  // global options may follow the command
    commands.emplace_back(id, sub);
    return sub;
  }

  void job_argument(CLI::App* sub, bool required) {
    auto* option = sub->add_option("JOB", invocation.job_id, "job id (12 hex digits, as submit printed it)");
    if (required) option->required();
    option->check([](const std::string& value) {
      return is_valid_job_id(value) ? std::string() : "not a job id (12 lowercase hex digits): " + value;
    });
  }

  Parser() {
    app.set_version_flag("--version", "heygemctl " + std::string(heygem_version()));
    app.require_subcommand(1, 1);
    app.footer(std::string(kEnvironment) + "\n" + exit_codes_help());
    app.get_formatter()->column_width(34);
    app.add_option("--socket", invocation.global.socket, "the daemon's Unix socket (default: see ENVIRONMENT)");
    app.add_option("--cluster", invocation.global.cluster,
                   "work on the Redis Streams cluster at URL (redis://[USER@]HOST[:PORT] or unix:/PATH) instead of "
                   "a local heygemd: submit, watch, wait, list, cancel, fetch, status, workers (docs/cluster.md)");
    app.add_flag("--json", invocation.global.json, "machine output: NDJSON messages of the protocol on stdout");
    app.add_flag("-q,--quiet", invocation.global.quiet, "print nothing but errors (on stderr)");
    app.add_option("--timeout", invocation.global.timeout_s,
                   "give up (exit 3) when heygemd does not answer a request within SECONDS (default: wait); "
                   "a running job's progress is not limited")
        ->check(CLI::Range(0.001, 86400.0));

    add_submit();
    job_argument(command(Command::status, "status", "show a job, or without JOB the queued and running jobs"), false);
    command(Command::list, "list", "list your jobs (root: everyone's)")
        ->add_flag("-a,--all", invocation.all, "include finished jobs");
    job_argument(command(Command::watch, "watch", "follow a job's progress until it ends (exit code as submit)"), true);
    job_argument(command(Command::wait, "wait", "wait silently until a job ends (exit code as submit)"), true);
    job_argument(command(Command::cancel, "cancel", "cancel a queued or running job"), true);
    CLI::App* fetch = command(Command::fetch, "fetch", "copy a job's results out of the daemon's spool");
    job_argument(fetch, true);
    fetch->add_option("-o,--output", invocation.output, "output file (one item) or folder (several items)")
        ->required();
    fetch->add_flag("-f,--force", invocation.force, "overwrite existing files");
    fetch->footer("With a folder, each item is written as <video stem>.lipsync.mp4 in it.");
    job_argument(command(Command::logs, "logs", "print a job's log"), true);
    CLI::App* models = command(Command::models, "models", "list the configured models, their memory and heartbeats");
    models->require_subcommand(0, 1);
    CLI::App* load = models->add_subcommand("load", "load and warm a model now (root or the daemon's user)");
    load->add_option("NAME", invocation.model_name, "the model's name in the config")->required();
    load->fallthrough();
    CLI::App* unload = models->add_subcommand("unload", "unload an idle model now (root or the daemon's user)");
    unload->add_option("NAME", invocation.model_name, "the model's name in the config")->required();
    unload->fallthrough();
    models->parse_complete_callback([this, load, unload] {
      if (load->parsed()) invocation.model_action = "load";
      if (unload->parsed()) invocation.model_action = "unload";
    });
    command(Command::ping, "ping", "check that the daemon answers");
    command(Command::version, "version", "print the versions of heygemctl, heygemd and the protocol");
    command(Command::reload, "reload", "make the daemon re-read its configuration and reload changed models");
    command(Command::workers, "workers", "with --cluster: the cluster's workers, their state and running jobs");
  }

  void add_submit() {
    CLI::App* sub = command(Command::submit, "submit", "lip-sync videos to an audio track");
    SubmitArgs& s = invocation.submit;
    sub->add_option("-a,--audio", s.audio, "the audio (any format FFmpeg reads, or a video's sound)")->required();
    sub->add_option("VIDEO", s.videos, "one or more videos or still images")->required()->expected(1, -1);
    sub->add_option("-o,--output", s.output, "output file (one video) or folder (see OUTPUT)");
    sub->add_flag("-d,--detach", s.detach, "return after submitting and print the job id (results: fetch)");
    sub->add_flag("-f,--force", s.force, "replace existing output files (once the new one is complete)");
    sub->add_flag("--inline", s.inline_inputs,
                  "with --cluster: carry the inputs inside Redis (at most 16 MiB each) instead of naming their paths "
                  "on the shared storage");
    sub->add_option("--blend", raw.blend, "paste the mouth with a soft mask or the reference's hard box (feather)")
        ->check(CLI::IsMember({"feather", "hard"}));
    sub->add_flag("--strict", raw.strict, "fail at the first frame without a face instead of passing it through");
    sub->add_option("--loop", raw.loop, "how a video shorter than the audio repeats (pingpong)")
        ->check(CLI::IsMember({"pingpong", "forward"}));
    raw.fps_option = sub->add_option("--fps", raw.fps, "output frame rate (default: the video's)")
                         ->check(CLI::Range(0.001, 240.0));
    sub->add_option("--box", raw.box, "fixed face box T,B,L,R in pixels: no face detection");
    sub->add_flag("--nosmooth", raw.nosmooth, "no temporal smoothing of the face boxes");
    sub->add_option("--generator", raw.generator, "generator model by name (default: the daemon's)");
    sub->add_option("--detector", raw.detector, "face detector model by name (default: the daemon's)");
    raw.crf_option = sub->add_option("--crf", raw.crf, "x264 quality 0..51, lower is better (18)")
                         ->check(CLI::Range(0, 51));
    auto* lossless = sub->add_flag("--lossless", raw.lossless, "lossless x264 (yuv444p): large files");
    raw.crf_option->excludes(lossless);
    sub->add_option("--preset", raw.preset, "x264 preset, ultrafast..veryslow (veryfast)")
        ->check(CLI::IsMember(protocol::x264_presets()));
    sub->add_flag("--no-avatar-cache", raw.no_avatar_cache,
                  "detect the faces even if the daemon has this video's in its avatar cache");
    auto* enhance = sub->add_flag("--enhance", raw.enhance,
                                  "restore the faces with GFPGAN v1.4 after the lip-sync (needs GFPGANv1.4.pth)");
    sub->add_flag("--no-enhance", raw.no_enhance, "no face restoration, whatever the daemon's default")->excludes(enhance);
    sub->add_flag("--no-silence-gate", raw.no_silence_gate,
                  "generate the mouth in silent stretches too (default: silent frames keep the source face)");
    sub->footer(kSubmitFooter);
  }

  static protocol::FaceBoxOption parse_box(const std::string& text) {
    std::array<int, 4> values{};
    std::istringstream in(text);
    for (std::size_t i = 0; i < 4; ++i) {
      char comma = ',';
      if ((i > 0 && !(in >> comma)) || comma != ',' || !(in >> values[i]))
        throw CLI::ValidationError("--box", "expected T,B,L,R (four integers), got '" + text + "'");
    }
    if (in >> std::ws; !in.eof()) throw CLI::ValidationError("--box", "expected T,B,L,R (four integers), got '" + text + "'");
    return {values[0], values[1], values[2], values[3]};
  }

  // The plain values into protocol options, validated by the protocol's own rules.
  void finish_submit() {
    protocol::SubmitOptions& o = invocation.submit.options;
    if (!raw.blend.empty()) o.blend = protocol::blend_from_string(raw.blend);
    if (!raw.loop.empty()) o.loop = protocol::loop_from_string(raw.loop);
    o.strict = raw.strict;
    o.nosmooth = raw.nosmooth;
    o.lossless = raw.lossless;
    o.avatar_cache = !raw.no_avatar_cache;
    o.silence_gate = !raw.no_silence_gate;
    if (raw.enhance) o.enhance = true;
    if (raw.no_enhance) o.enhance = false;
    if (raw.fps_option->count()) o.fps = raw.fps;
    if (raw.crf_option->count()) o.crf = raw.crf;
    if (!raw.box.empty()) o.box = parse_box(raw.box);
    if (!raw.generator.empty()) o.generator = raw.generator;
    if (!raw.detector.empty()) o.detector = raw.detector;
    if (!raw.preset.empty()) o.preset = raw.preset;
    try {
      o = protocol::submit_options_from_json(protocol::to_json(o));
    } catch (const Error& error) {
      throw CLI::ValidationError("submit", error.what());
    }
  }

  void choose_command() {
    for (const auto& [id, sub] : commands)
      if (sub->parsed()) invocation.command = id;
    if (invocation.command == Command::submit) finish_submit();
  }
};

}  // namespace

// The first word that is not a global option, when it names no command: CLI11 would only say
// "A subcommand is required".
std::optional<std::string> unknown_command(const Parser& parser, int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--socket" || word == "--timeout" || word == "--cluster") {
      ++i;  // its value
      continue;
    }
    if (word.empty() || word.front() == '-') continue;
    for (const auto& [id, sub] : parser.commands)
      if (sub->get_name() == word) return std::nullopt;
    return std::string(word);
  }
  return std::nullopt;
}

ParseResult parse_command_line(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Parser parser;
  if (const auto word = unknown_command(parser, argc, argv)) {
    std::string known;
    for (const auto& [id, sub] : parser.commands) known += (known.empty() ? "" : ", ") + sub->get_name();
    err << "heygemctl: unknown command '" << *word << "' (commands: " << known << "; see heygemctl --help)\n";
    return to_int(ExitCode::usage);
  }
  try {
    parser.app.parse(argc, argv);
    parser.choose_command();
  } catch (const CLI::ParseError& error) {
    const int code = parser.app.exit(error, out, err);
    return code == 0 ? 0 : to_int(ExitCode::usage);
  }
  return std::move(parser.invocation);
}

std::string help_text(const std::string& command) {
  Parser parser;
  if (command.empty()) return parser.app.help();
  return parser.app.get_subcommand(command)->help();
}

}  // namespace heygem::cli
