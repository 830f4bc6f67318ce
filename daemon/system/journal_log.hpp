#pragma once
// Logging towards journald (issue 6). When stderr is the journal (JOURNAL_STREAM names stderr's
// device:inode) or the config asks for it, records go through sd_journal_send with the structured
// fields JOB_ID, MODEL and STAGE, so `journalctl -u heygemd JOB_ID=...` works. Otherwise (or
// without libsystemd at build time) plain spdlog to stderr.
//
// The fields come from a per-thread context that the daemon's threads set with ScopedLogFields while
// they work on a job, a model or a stage. The sink reads it in the logging thread, so loggers that
// carry these fields must be synchronous spdlog loggers (the default).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <spdlog/sinks/sink.h>

namespace heygem::system {

struct LogFields {
  std::string job_id;
  std::string model;
  std::string stage;
};

// The fields of the calling thread (empty strings where none is set).
const LogFields& current_log_fields();

// Sets the non-empty members of `fields` on this thread for its lifetime; restores the previous ones.
class ScopedLogFields {
 public:
  explicit ScopedLogFields(const LogFields& fields);
  ~ScopedLogFields();
  ScopedLogFields(const ScopedLogFields&) = delete;
  ScopedLogFields& operator=(const ScopedLogFields&) = delete;

 private:
  LogFields previous_;
};

// The journal record of one log line: "MESSAGE=...", "PRIORITY=<syslog level>",
// "SYSLOG_IDENTIFIER=...", then JOB_ID= / MODEL= / STAGE= for the non-empty fields and CODE_FILE= /
// CODE_LINE= / CODE_FUNC= when the call site is known.
struct JournalRecordInput {
  std::string message;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string identifier;
  LogFields fields;
  std::string code_file, code_func;
  int code_line = 0;
};
std::vector<std::string> journal_record(const JournalRecordInput& input);
int syslog_priority(spdlog::level::level_enum level);

// The journal logger's sink with the last step left open: every line becomes the journal_record() of
// its message, level, call site and the logging thread's fields, handed to `write` (the journal
// logger's writer is sd_journal_sendv; tests keep the records).
using JournalWriter = std::function<void(const std::vector<std::string>& record)>;
std::shared_ptr<spdlog::sinks::sink> make_journal_record_sink(std::string identifier, JournalWriter write);

// True when JOURNAL_STREAM is set and names the device:inode of fd 2.
bool stderr_is_journal();
// True when this build can write to journald (libsystemd was found).
bool journal_supported();

enum class LogTarget { automatic, journal, console };
// "auto", "journal", "console"; anything else -> heygem::Error(invalid_argument) naming the value.
LogTarget parse_log_target(const std::string& text);

// A synchronous logger named `name` for the chosen target. `automatic` picks the journal when
// stderr_is_journal(); `journal` without libsystemd falls back to stderr and says so in its first line.
std::shared_ptr<spdlog::logger> make_service_logger(const std::string& name, LogTarget target);

}  // namespace heygem::system
