#include "tests/docs/doc_tools.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cctype>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "common/unique_fd.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace heygem::test {
namespace {

UniqueFd open_or_throw(const std::filesystem::path& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  if (!fd) throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  return fd;
}

// In the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(int out, int err, char* const* argv, char* const* envp) {
  const int null = ::open("/dev/null", O_RDONLY);
  if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
  ::execvpe(argv[0], argv, envp);
  ::_exit(127);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  if (argv.empty()) throw std::runtime_error("run_command: no program");
  if (argv[0].empty() || argv[0].find("-NOTFOUND") != std::string::npos)
    throw std::runtime_error("a program these tests need was not found at configure time (" + argv[0] +
                             "); scripts/install-deps.sh installs groff-base, mandoc and bash");
  TempDir scratch;
  const auto out_path = scratch.path() / "stdout", err_path = scratch.path() / "stderr";
  const UniqueFd out = open_or_throw(out_path, O_WRONLY | O_CREAT | O_TRUNC);
  const UniqueFd err = open_or_throw(err_path, O_WRONLY | O_CREAT | O_TRUNC);

  // The environment, with the variables of `extra_env` replaced rather than repeated.
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  std::set<std::string> replaced;
  for (const auto& entry : extra_env) replaced.insert(name_of(entry));
  std::vector<std::string> environment;
  for (char** entry = environ; *entry; ++entry)
    if (!replaced.count(name_of(*entry))) environment.emplace_back(*entry);
  environment.insert(environment.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> args, envp;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) exec_child(out.get(), err.get(), args.data(), envp.data());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_text(out_path);
  result.err = read_text(err_path);
  if (result.exit_code == 127 && result.out.empty() && result.err.empty())
    throw std::runtime_error("cannot run " + argv[0] + " (not found?)");
  return result;
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string squeeze_spaces(const std::string& text) {
  std::string result;
  bool space = false;
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !result.empty();
      continue;
    }
    if (space) result += ' ';
    space = false;
    result += c;
  }
  return result;
}

// ---- CLI11 help ----------------------------------------------------------------------------

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string first_word(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  return word;
}

}  // namespace

HelpText parse_help(const std::string& text) {
  HelpText help;
  std::string section;
  static const std::regex choices_pattern(R"(:\{([^}]*)\})");
  static const std::regex exit_code_pattern(R"(^  (\d+)  (.*)$)");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ' ') {
      section = line;  // "Options:", "Positionals:", "Subcommands:", "EXIT CODES:", or prose
      continue;
    }
    // Entries start two spaces in; deeper lines continue the entry above.
    if (line.size() < 3 || line.compare(0, 2, "  ") != 0 || line[2] == ' ') continue;
    if (section == "Options:") {
      HelpOption option;
      option.names = split(first_word(line), ',');
      // The type column ends where the description column begins (two or more spaces).
      const auto type_end = line.find("  ", 2);
      const std::string head = line.substr(0, type_end);
      if (std::smatch match; std::regex_search(head, match, choices_pattern)) option.choices = split(match[1], ',');
      help.options.push_back(std::move(option));
    } else if (section == "Positionals:") {
      help.positionals.push_back(first_word(line));
    } else if (section == "Subcommands:") {
      help.subcommands.push_back(first_word(line));
    } else if (section == "EXIT CODES:") {
      if (std::smatch match; std::regex_match(line, match, exit_code_pattern))
        help.exit_codes[std::stoi(match[1])] = squeeze_spaces(match[2]);
    }
  }
  return help;
}

// ---- man(7) source -------------------------------------------------------------------------

namespace {

// The text of roff input with its escapes resolved (the ones these pages use).
std::string unescape(const std::string& text, int line_number) {
  std::string result;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      result += text[i];
      continue;
    }
    if (++i >= text.size()) break;  // a trailing backslash joins lines: nothing to add
    switch (text[i]) {
      case '-': result += '-'; break;
      case 'e': result += '\\'; break;
      case '&': case 'c': break;
      case ' ': result += ' '; break;
      case 'f':  // \fB, \fI, \fR, \fP: fonts carry no text
        ++i;
        break;
      case '(': {
        const std::string name = text.substr(i + 1, 2);
        if (name == "dq") result += '"';
        else if (name == "aq") result += '\'';
        else throw std::runtime_error("line " + std::to_string(line_number) + ": unknown escape \\(" + name);
        i += 2;
        break;
      }
      default:
        throw std::runtime_error("line " + std::to_string(line_number) + ": unknown escape \\" + text[i]);
    }
  }
  return result;
}

// A request's arguments: words, or "quoted strings" where "" is a quote.
std::vector<std::string> request_arguments(const std::string& rest) {
  std::vector<std::string> args;
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) break;
    std::string arg;
    if (rest[i] == '"') {
      for (++i; i < rest.size(); ++i) {
        if (rest[i] == '"' && i + 1 < rest.size() && rest[i + 1] == '"') {
          arg += '"';
          ++i;
        } else if (rest[i] == '"') {
          ++i;
          break;
        } else {
          arg += rest[i];
        }
      }
    } else {
      while (i < rest.size() && rest[i] != ' ') arg += rest[i++];
    }
    args.push_back(arg);
  }
  return args;
}

class ManParser {
 public:
  ManPage parse(const std::filesystem::path& file) {
    std::istringstream in(read_text(file));
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (line.rfind(".\\\"", 0) == 0) continue;  // comment
      if (!line.empty() && line[0] == '.') request(line, number);
      else add_text(unescape(line, number));
    }
    finish_entry();
    for (auto& block : page_.blocks) block.text = squeeze_spaces(block.text);
    return std::move(page_);
  }

 private:
  void request(const std::string& line, int number) {
    const auto space = line.find(' ');
    const std::string name = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
    const std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
    std::vector<std::string> args = request_arguments(rest);
    for (auto& arg : args) arg = unescape(arg, number);

    static const std::set<std::string> alternating{"BR", "RB", "BI", "IB", "IR", "RI"};
    static const std::set<std::string> layout{"RS", "RE", "EX", "EE", "TH"};
    if (name == "SH" || name == "SS") {
      finish_entry();
      const std::string heading = squeeze_spaces(join(args, " "));
      ManBlock block;
      block.section = name == "SH" ? heading : current().section;
      block.subsection = name == "SH" ? "" : heading;
      page_.blocks.push_back(std::move(block));
    } else if (name == "TP" || name == "TQ") {
      if (name == "TP") {
        finish_entry();
        entry_.emplace();
      }
      expect_tag_ = true;
    } else if (name == "PP" || name == "P" || name == "LP") {
      finish_entry();
    } else if (name == "B" || name == "I") {
      add_text(join(args, " "));
    } else if (alternating.count(name)) {
      add_text(join(args, ""));
    } else if (!layout.count(name)) {
      throw std::runtime_error("line " + std::to_string(number) + ": macro ." + name + " is not known to this parser");
    }
  }

  static std::string join(const std::vector<std::string>& parts, const std::string& separator) {
    std::string result;
    for (std::size_t i = 0; i < parts.size(); ++i) result += (i ? separator : "") + parts[i];
    return result;
  }

  ManBlock& current() {
    if (page_.blocks.empty()) page_.blocks.push_back({});
    return page_.blocks.back();
  }

  void add_text(const std::string& text) {
    current().text += text + "\n";
    if (!entry_) return;
    if (expect_tag_) {
      entry_->tags.push_back(squeeze_spaces(text));
      expect_tag_ = false;
    } else {
      entry_->body += text + "\n";
    }
  }

  void finish_entry() {
    if (entry_) {
      entry_->body = squeeze_spaces(entry_->body);
      current().entries.push_back(std::move(*entry_));
      entry_.reset();
    }
    expect_tag_ = false;
  }

  ManPage page_;
  std::optional<ManEntry> entry_;
  bool expect_tag_ = false;
};

}  // namespace

const ManBlock& ManPage::block(const std::string& section, const std::string& subsection) const {
  for (const auto& candidate : blocks)
    if (candidate.section == section && candidate.subsection == subsection) return candidate;
  throw std::runtime_error("the man page has no section \"" + section + "\"" +
                           (subsection.empty() ? "" : " / subsection \"" + subsection + "\""));
}

std::vector<const ManBlock*> ManPage::subsections(const std::string& section) const {
  std::vector<const ManBlock*> found;
  for (const auto& candidate : blocks)
    if (candidate.section == section && !candidate.subsection.empty()) found.push_back(&candidate);
  return found;
}

ManPage parse_man_page(const std::filesystem::path& file) { return ManParser().parse(file); }

std::set<std::string> tag_options(const std::string& tag) {
  std::set<std::string> options;
  std::istringstream in(tag);
  for (std::string word; in >> word;) {
    while (!word.empty() && (word.back() == ',' || word.back() == '|')) word.pop_back();
    if (word.size() >= 2 && word[0] == '-' && word != "--") options.insert(word);
  }
  return options;
}

}  // namespace heygem::test
