// heygemctl(1) against the program itself: every command, option, choice and exit code that
// `heygemctl --help` and `heygemctl COMMAND --help` show is in the man page, and the man page
// shows none that the program does not have.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>

#include "tests/docs/doc_tools.hpp"

namespace heygem::test {
namespace {

const std::filesystem::path kManPage = std::filesystem::path(HEYGEM_SOURCE_DIR) / "man" / "heygemctl.1";

HelpText heygemctl_help(const std::vector<std::string>& args) {
  std::vector<std::string> argv{HEYGEMCTL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--help");
  const auto result = run_command(argv);
  if (result.exit_code != 0) throw std::runtime_error("heygemctl --help failed: " + result.err);
  return parse_help(result.out);
}

// The command a COMMANDS subsection documents: the first word of its heading.
std::string heading_command(const ManBlock& block) { return block.subsection.substr(0, block.subsection.find(' ')); }

const ManBlock* command_block(const ManPage& page, const std::string& command) {
  for (const auto* block : page.subsections("COMMANDS"))
    if (heading_command(*block) == command) return block;
  return nullptr;
}

std::set<std::string> documented_options(const ManBlock& block) {
  std::set<std::string> options;
  for (const auto& entry : block.entries)
    for (const auto& tag : entry.tags) options.merge(tag_options(tag));
  return options;
}

bool has_tag_starting_with(const ManBlock& block, const std::string& word) {
  return std::any_of(block.entries.begin(), block.entries.end(), [&](const ManEntry& entry) {
    return std::any_of(entry.tags.begin(), entry.tags.end(),
                       [&](const std::string& tag) { return tag.substr(0, tag.find(' ')) == word; });
  });
}

// The choices a tag such as "--blend feather|hard" lists.
std::set<std::string> tag_choices(const ManBlock& block, const std::string& option) {
  for (const auto& entry : block.entries)
    for (const auto& tag : entry.tags) {
      if (!tag_options(tag).count(option)) continue;
      const auto space = tag.rfind(' ');
      const auto words = tag.substr(space + 1);
      std::set<std::string> choices;
      std::size_t start = 0;
      for (auto bar = words.find('|'); bar != std::string::npos; start = bar + 1, bar = words.find('|', start))
        choices.insert(words.substr(start, bar - start));
      if (start > 0) choices.insert(words.substr(start));
      return choices;
    }
  return {};
}

TEST(HeygemctlManPage, DocumentsEveryCommandAndNoOther) {
  const auto page = parse_man_page(kManPage);
  const auto help = heygemctl_help({});
  ASSERT_FALSE(help.subcommands.empty()) << "no Subcommands in heygemctl --help";
  for (const auto& command : help.subcommands)
    EXPECT_NE(command_block(page, command), nullptr) << "heygemctl(1) COMMANDS has no subsection for " << command;
  for (const auto* block : page.subsections("COMMANDS"))
    EXPECT_NE(std::find(help.subcommands.begin(), help.subcommands.end(), heading_command(*block)), help.subcommands.end())
        << "heygemctl(1) documents a command heygemctl does not have: " << block->subsection;
}

TEST(HeygemctlManPage, DocumentsEveryGlobalOptionAndNoOther) {
  const auto page = parse_man_page(kManPage);
  const auto help = heygemctl_help({});
  ASSERT_FALSE(help.options.empty());
  const auto documented = documented_options(page.block("OPTIONS"));
  std::set<std::string> existing;
  for (const auto& option : help.options)
    for (const auto& name : option.names) {
      existing.insert(name);
      EXPECT_TRUE(documented.count(name)) << "heygemctl(1) OPTIONS lacks " << name;
    }
  for (const auto& name : documented)
    EXPECT_TRUE(existing.count(name)) << "heygemctl(1) OPTIONS documents " << name << ", which heygemctl --help lacks";
}

TEST(HeygemctlManPage, DocumentsEveryCommandOptionPositionalAndChoice) {
  const auto page = parse_man_page(kManPage);
  for (const auto& command : heygemctl_help({}).subcommands) {
    SCOPED_TRACE("command " + command);
    const auto* block = command_block(page, command);
    ASSERT_NE(block, nullptr);
    const auto help = heygemctl_help({command});
    const auto documented = documented_options(*block);
    std::set<std::string> existing;
    for (const auto& option : help.options) {
      for (const auto& name : option.names) {
        existing.insert(name);
        // -h/--help is the same for every command: OPTIONS documents it once.
        if (name == "-h" || name == "--help") continue;
        EXPECT_TRUE(documented.count(name)) << "heygemctl(1) " << command << " lacks " << name;
      }
      if (option.choices.empty()) continue;
      const std::set<std::string> choices(option.choices.begin(), option.choices.end());
      // Long lists (the x264 presets) are prose in the body; short ones are in the tag.
      if (choices.size() <= 3) {
        EXPECT_EQ(tag_choices(*block, option.names.back()), choices) << option.names.back();
      } else {
        for (const auto& choice : choices) EXPECT_NE(block->text.find(choice), std::string::npos) << choice;
      }
    }
    for (const auto& name : documented)
      EXPECT_TRUE(existing.count(name)) << "heygemctl(1) " << command << " documents " << name
                                        << ", which `heygemctl " << command << " --help` lacks";
    for (const auto& positional : help.positionals) {
      EXPECT_TRUE(has_tag_starting_with(*block, positional)) << "heygemctl(1) " << command << " has no entry for " << positional;
      EXPECT_NE(block->subsection.find(positional), std::string::npos)
          << "the heading \"" << block->subsection << "\" does not show " << positional;
    }
  }
}

TEST(HeygemctlManPage, ExitStatusEqualsTheCliTable) {
  const auto page = parse_man_page(kManPage);
  const auto table = heygemctl_help({}).exit_codes;
  ASSERT_FALSE(table.empty()) << "no EXIT CODES in heygemctl --help";
  std::map<int, std::string> documented;
  for (const auto& entry : page.block("EXIT STATUS").entries) {
    ASSERT_EQ(entry.tags.size(), 1u);
    documented[std::stoi(entry.tags.front())] = entry.body;
  }
  EXPECT_EQ(documented, table);
}

TEST(HeygemctlManPage, ListsEveryEnvironmentVariableOfTheHelp) {
  const auto page = parse_man_page(kManPage);
  const auto result = run_command({HEYGEMCTL_BINARY, "--help"});
  const auto start = result.out.find("ENVIRONMENT:");
  ASSERT_NE(start, std::string::npos);
  std::istringstream in(result.out.substr(start));
  std::string line;
  std::getline(in, line);
  int variables = 0;
  const auto& environment = page.block("ENVIRONMENT");
  while (std::getline(in, line) && !line.empty()) {
    if (line.size() < 3 || line[2] == ' ') continue;
    const auto name = line.substr(2, line.find(' ', 2) - 2);
    ++variables;
    EXPECT_TRUE(has_tag_starting_with(environment, name)) << "heygemctl(1) ENVIRONMENT lacks " << name;
  }
  EXPECT_GT(variables, 0);
}

TEST(HeygemctlManPage, HasTheCronExamples) {
  const auto& examples = parse_man_page(kManPage).block("EXAMPLES").text;
  EXPECT_NE(examples.find("j=$(heygemctl submit --detach --audio a.wav v.mp4) && heygemctl wait --quiet"),
            std::string::npos);
  EXPECT_NE(examples.find("heygemctl submit --quiet --force --audio a.wav v.mp4 -o out.mp4"), std::string::npos);
}

}  // namespace
}  // namespace heygem::test
