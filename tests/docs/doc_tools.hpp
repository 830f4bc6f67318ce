#pragma once
// What the documentation tests read: the output of programs (heygemctl --help, groff, mandoc,
// bash), CLI11 help texts and man pages in man(7) source form, parsed into their structure.
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace heygem::test {

struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + signal
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with the environment plus `extra_env` ("NAME=value"), stdin from
// /dev/null, and returns what it wrote. Throws std::runtime_error when it cannot be started.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {});

std::string read_text(const std::filesystem::path& file);
// Runs of whitespace become one space; leading and trailing whitespace goes.
std::string squeeze_spaces(const std::string& text);

// One option of a CLI11 help text: "-a,--audio TEXT:{x,y} REQUIRED  description".
struct HelpOption {
  std::vector<std::string> names;    // "-a", "--audio"
  std::vector<std::string> choices;  // "x", "y" (empty when free)
};

// The parts of a CLI11 help text the docs must cover.
struct HelpText {
  std::vector<HelpOption> options;
  std::vector<std::string> positionals;
  std::vector<std::string> subcommands;
  std::map<int, std::string> exit_codes;  // the "EXIT CODES:" section, when present
};
HelpText parse_help(const std::string& text);

// A .TP entry of a man page: its tag lines (.TP, then .TQ ones) and its body, as plain text.
struct ManEntry {
  std::vector<std::string> tags;
  std::string body;
};

// The content of one .SH section ("" subsection) or one .SS subsection of it.
struct ManBlock {
  std::string section;
  std::string subsection;  // the .SS heading as text, "" for the text before the first .SS
  std::vector<ManEntry> entries;
  std::string text;        // all its text, entries included, whitespace squeezed
};

struct ManPage {
  std::vector<ManBlock> blocks;
  // The block of `section` / `subsection`; throws std::runtime_error naming them if absent.
  const ManBlock& block(const std::string& section, const std::string& subsection = "") const;
  std::vector<const ManBlock*> subsections(const std::string& section) const;
};

// Parses the man(7) source of a page (the macros these pages use). Unknown escapes or macros
// throw std::runtime_error naming the line, so that the tests notice what they cannot read.
ManPage parse_man_page(const std::filesystem::path& file);

// The words of a tag that are options: "-a, --audio AUDIO" -> {"-a", "--audio"}.
std::set<std::string> tag_options(const std::string& tag);

}  // namespace heygem::test
