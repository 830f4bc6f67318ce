// heygemctl's command line: options become the submit request the daemon gets; bad usage is 2.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/commands/commands.hpp"
#include "cli/lib/cli_error.hpp"
#include "cli/lib/exit_codes.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::cli {
namespace {

struct Parsed {
  ParseResult result;
  std::string out, err;
};

Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "heygemctl");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out, err;
  auto result = parse_command_line(static_cast<int>(argv.size()), argv.data(), out, err);
  return {std::move(result), out.str(), err.str()};
}

Invocation invocation(const std::vector<std::string>& args) {
  Parsed parsed = parse(args);
  if (!std::holds_alternative<Invocation>(parsed.result)) {
    ADD_FAILURE() << "did not parse: " << parsed.err;
    return {};
  }
  return std::get<Invocation>(parsed.result);
}

int exit_code(const std::vector<std::string>& args) {
  Parsed parsed = parse(args);
  return std::holds_alternative<int>(parsed.result) ? std::get<int>(parsed.result) : -1;
}

TEST(CommandLine, SubmitOptionsBecomeTheRequest) {
  const auto inv = invocation({"submit", "--audio", "talk/speech.wav", "clips/a.mp4", "clips/b.mov", "-o", "out/",
                               "--blend", "hard", "--strict", "--loop", "forward", "--fps", "30", "--box",
                               "10,200,20,220", "--nosmooth", "--generator", "wav2lip_gan", "--detector", "s3fd",
                               "--crf", "23", "--preset", "slow", "--no-avatar-cache", "--json", "--socket", "/tmp/h.sock"});
  ASSERT_EQ(inv.command, Command::submit);
  EXPECT_TRUE(inv.global.json);
  EXPECT_EQ(inv.global.socket, "/tmp/h.sock");  // a global option after the command

  const SubmitPlan plan = plan_submit(inv.submit, "/work");
  const auto& request = plan.request;
  EXPECT_EQ(request.audio_name, "speech.wav");  // basenames only
  EXPECT_EQ(request.item_names, (std::vector<std::string>{"a.mp4", "b.mov"}));
  EXPECT_EQ(request.output_names, (std::vector<std::string>{"a.lipsync.mp4", "b.lipsync.mp4"}));
  EXPECT_EQ(plan.outputs, (std::vector<std::filesystem::path>{"/work/out/a.lipsync.mp4", "/work/out/b.lipsync.mp4"}));
  EXPECT_EQ(request.fds, 5);

  const auto& o = request.options;
  EXPECT_EQ(o.blend, protocol::Blend::hard);
  EXPECT_TRUE(o.strict);
  EXPECT_EQ(o.loop, protocol::Loop::forward);
  EXPECT_EQ(o.fps, 30.0);
  EXPECT_EQ(o.box, (protocol::FaceBoxOption{10, 200, 20, 220}));
  EXPECT_TRUE(o.nosmooth);
  EXPECT_EQ(o.generator, "wav2lip_gan");
  EXPECT_EQ(o.detector, "s3fd");
  EXPECT_EQ(o.crf, 23);
  EXPECT_FALSE(o.lossless);
  EXPECT_EQ(o.preset, "slow");
  EXPECT_FALSE(o.avatar_cache);

  // What goes over the wire parses back on the daemon's side unchanged.
  const auto back = std::get<protocol::SubmitRequest>(protocol::parse_request(protocol::encode(protocol::Request{request})));
  EXPECT_EQ(back.options, o);
}

TEST(CommandLine, DefaultsLeaveOptionsToTheDaemon) {
  const auto inv = invocation({"submit", "-a", "a.wav", "v.mp4"});
  const SubmitPlan plan = plan_submit(inv.submit, "/home/u");
  EXPECT_EQ(protocol::to_json(plan.request.options), nlohmann::json::object());
  ASSERT_EQ(plan.outputs.size(), 1u);
  EXPECT_EQ(plan.outputs[0], std::filesystem::path("/home/u/v.lipsync.mp4"));  // the current folder
}

TEST(CommandLine, DetachWithoutOutputLeavesResultsInTheSpool) {
  const auto inv = invocation({"submit", "--detach", "--quiet", "-a", "a.wav", "v1.mp4", "v2.mp4", "v3.mp4"});
  EXPECT_TRUE(inv.submit.detach);
  EXPECT_TRUE(inv.global.quiet);
  const SubmitPlan plan = plan_submit(inv.submit, "/tmp");
  EXPECT_TRUE(plan.outputs.empty());
  EXPECT_TRUE(plan.request.output_names.empty());
  EXPECT_EQ(plan.request.fds, 4);
}

TEST(CommandLine, OutputFileNeedsASingleVideo) {
  test::TempDir dir;
  const auto single = invocation({"submit", "-a", "a.wav", "v.mp4", "-o", (dir.path() / "x.mp4").string()});
  EXPECT_EQ(plan_submit(single.submit, "/").outputs[0], dir.path() / "x.mp4");
  const auto folder = invocation({"submit", "-a", "a.wav", "v.mp4", "w.mp4", "-o", dir.path().string()});
  EXPECT_EQ(plan_submit(folder.submit, "/").outputs[1], dir.path() / "w.lipsync.mp4");

  const auto many = invocation({"submit", "-a", "a.wav", "v.mp4", "w.mp4", "-o", (dir.path() / "x.mp4").string()});
  try {
    plan_submit(many.submit, "/");
    FAIL() << "two videos into one file were accepted";
  } catch (const CliError& error) {
    EXPECT_EQ(error.exit_code(), ExitCode::usage);
  }
  const auto clash = invocation({"submit", "-a", "a.wav", "x/v.mp4", "y/v.mp4"});
  EXPECT_THROW(plan_submit(clash.submit, "/"), CliError);
}

TEST(CommandLine, BadUsageExitsWithTheUsageCode) {
  const int usage = to_int(ExitCode::usage);
  EXPECT_EQ(exit_code({}), usage);                                                  // no command
  EXPECT_EQ(exit_code({"submit", "v.mp4"}), usage);                                 // no audio
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav"}), usage);                           // no video
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--crf", "20", "--lossless"}), usage);
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--crf", "52"}), usage);
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--blend", "soft"}), usage);
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--box", "1,2,3"}), usage);
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--box", "9,2,3,4"}), usage);  // top >= bottom
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--preset", "warp"}), usage);
  EXPECT_EQ(exit_code({"submit", "-a", "a.wav", "v.mp4", "--generator", "../x"}), usage);
  EXPECT_EQ(exit_code({"watch"}), usage);
  EXPECT_EQ(exit_code({"cancel", "not-a-job"}), usage);
  EXPECT_EQ(exit_code({"fetch", "0123456789ab"}), usage);  // -o is required
  EXPECT_EQ(exit_code({"frobnicate"}), usage);
}

TEST(CommandLine, JobCommandsTakeAJobId) {
  EXPECT_EQ(invocation({"watch", "0123456789ab"}).command, Command::watch);
  EXPECT_EQ(invocation({"wait", "0123456789ab"}).job_id, "0123456789ab");
  EXPECT_EQ(invocation({"status"}).job_id, "");
  EXPECT_TRUE(invocation({"list", "--all"}).all);
  const auto fetch = invocation({"fetch", "0123456789ab", "-o", "out.mp4", "--force"});
  EXPECT_EQ(fetch.command, Command::fetch);
  EXPECT_EQ(fetch.output, "out.mp4");
  EXPECT_TRUE(fetch.force);
  for (const auto& [name, command] : std::vector<std::pair<std::string, Command>>{
           {"models", Command::models}, {"ping", Command::ping}, {"version", Command::version}, {"reload", Command::reload}})
    EXPECT_EQ(invocation({name}).command, command) << name;
}

TEST(CommandLine, HelpListsEveryCommandAndExitCode) {
  const Parsed parsed = parse({"--help"});
  ASSERT_TRUE(std::holds_alternative<int>(parsed.result));
  EXPECT_EQ(std::get<int>(parsed.result), 0);
  for (const char* command : {"submit", "status", "list", "watch", "wait", "cancel", "fetch", "logs", "models", "ping",
                              "version", "reload"})
    EXPECT_NE(parsed.out.find(command), std::string::npos) << command;
  for (const auto& entry : kExitCodes) {
    const std::string line = "  " + std::to_string(to_int(entry.code)) + "  " + std::string(entry.meaning);
    EXPECT_NE(parsed.out.find(line), std::string::npos) << line;
  }
  EXPECT_NE(parsed.out.find("HEYGEM_SOCKET"), std::string::npos);
  const std::string submit = help_text("submit");
  for (const char* option : {"--audio", "--output", "--detach", "--force", "--blend", "--strict", "--loop", "--fps",
                             "--box", "--nosmooth", "--generator", "--detector", "--crf", "--lossless", "--preset",
                             "--no-avatar-cache"})
    EXPECT_NE(submit.find(option), std::string::npos) << option;
}

}  // namespace
}  // namespace heygem::cli
