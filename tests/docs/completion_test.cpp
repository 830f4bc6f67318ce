// completion/heygemctl.bash against `heygemctl --help`: it offers every command, every option of
// each command (and the global ones, which may follow a command) and every choice, and no other.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "tests/docs/doc_tools.hpp"

namespace heygem::test {
namespace {

const std::string kCompletion = (std::filesystem::path(HEYGEM_SOURCE_DIR) / "completion" / "heygemctl.bash").string();

// What the completion offers for the command line `words` (the last one is being completed).
// heygemctl is not in PATH here, so nothing asks a daemon.
std::set<std::string> complete(const std::vector<std::string>& words) {
  std::vector<std::string> argv{HEYGEM_BASH, "--noprofile", "--norc", "-c",
                                "source \"$0\" || exit 90; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
                                "_heygemctl || exit 91; printf '%s\\n' \"${COMPREPLY[@]}\"",
                                kCompletion};
  argv.insert(argv.end(), words.begin(), words.end());
  const auto result = run_command(argv, {"PATH=/nonexistent"});
  if (result.exit_code != 0) throw std::runtime_error("completion failed (" + std::to_string(result.exit_code) + "): " + result.err);
  std::set<std::string> offered;
  std::istringstream in(result.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) offered.insert(line);
  return offered;
}

HelpText help(const std::string& command = "") {
  std::vector<std::string> argv{HEYGEMCTL_BINARY};
  if (!command.empty()) argv.push_back(command);
  argv.push_back("--help");
  return parse_help(run_command(argv).out);
}

std::set<std::string> option_names(const HelpText& text) {
  std::set<std::string> names;
  for (const auto& option : text.options) names.insert(option.names.begin(), option.names.end());
  return names;
}

TEST(Completion, OffersEveryCommand) {
  const auto commands = help().subcommands;
  ASSERT_FALSE(commands.empty());
  EXPECT_EQ(complete({"heygemctl", ""}), std::set<std::string>(commands.begin(), commands.end()));
}

TEST(Completion, OffersEveryGlobalOption) {
  EXPECT_EQ(complete({"heygemctl", "-"}), option_names(help()));
}

TEST(Completion, FindsTheCommandAfterAGlobalOptionWithAValue) {
  EXPECT_EQ(complete({"heygemctl", "--socket", "/run/x.sock", "wa"}), (std::set<std::string>{"watch", "wait"}));
}

TEST(Completion, OffersEveryOptionOfEachCommand) {
  const auto global = option_names(help());
  for (const auto& command : help().subcommands) {
    auto expected = option_names(help(command));
    expected.insert(global.begin(), global.end());
    EXPECT_EQ(complete({"heygemctl", command, "-"}), expected) << "heygemctl " << command;
  }
}

TEST(Completion, OffersEveryChoice) {
  int options_with_choices = 0;
  for (const auto& command : help().subcommands)
    for (const auto& option : help(command).options) {
      if (option.choices.empty()) continue;
      ++options_with_choices;
      const std::set<std::string> choices(option.choices.begin(), option.choices.end());
      for (const auto& name : option.names) {
        EXPECT_EQ(complete({"heygemctl", command, name, ""}), choices) << command << " " << name;
        if (name.rfind("--", 0) == 0) {  // --name=value: bash splits it at the '='
          EXPECT_EQ(complete({"heygemctl", command, name, "=", ""}), choices) << command << " " << name << "=";
        }
      }
    }
  EXPECT_GT(options_with_choices, 0);
}

TEST(Completion, OffersFilesForInputsAndOutputs) {
  // The source tree's README.md stands in for any file.
  const std::string prefix = std::string(HEYGEM_SOURCE_DIR) + "/README.m";
  const std::set<std::string> readme{std::string(HEYGEM_SOURCE_DIR) + "/README.md"};
  EXPECT_EQ(complete({"heygemctl", "submit", "--audio", prefix}), readme);
  EXPECT_EQ(complete({"heygemctl", "submit", "-a", "a.wav", prefix}), readme);
  EXPECT_EQ(complete({"heygemctl", "fetch", "-o", prefix}), readme);
  // list's -a is --all, a flag: what follows is not its value.
  EXPECT_EQ(complete({"heygemctl", "list", "-a", prefix}), std::set<std::string>{});
}

}  // namespace
}  // namespace heygem::test
