#include "daemon/system/journal_log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdlib>
#include <mutex>
#include <string_view>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/errors.hpp"

#ifdef HEYGEM_HAVE_SYSTEMD
#define SD_JOURNAL_SUPPRESS_LOCATION  // our records carry the caller's location, not the sink's
#include <systemd/sd-journal.h>
#endif

namespace heygem::system {
namespace {

// Per-thread on purpose: each pipeline / scheduler thread works on one job at a time.
thread_local LogFields thread_log_fields;

}  // namespace

const LogFields& current_log_fields() { return thread_log_fields; }

ScopedLogFields::ScopedLogFields(const LogFields& fields) : previous_(thread_log_fields) {
  if (!fields.job_id.empty()) thread_log_fields.job_id = fields.job_id;
  if (!fields.model.empty()) thread_log_fields.model = fields.model;
  if (!fields.stage.empty()) thread_log_fields.stage = fields.stage;
}

ScopedLogFields::~ScopedLogFields() { thread_log_fields = previous_; }

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical: return 2;  // LOG_CRIT
    case spdlog::level::err: return 3;       // LOG_ERR
    case spdlog::level::warn: return 4;      // LOG_WARNING
    case spdlog::level::info: return 6;      // LOG_INFO
    default: return 7;                       // LOG_DEBUG (trace, debug)
  }
}

std::vector<std::string> journal_record(const JournalRecordInput& input) {
  std::vector<std::string> record{"MESSAGE=" + input.message,
                                  "PRIORITY=" + std::to_string(syslog_priority(input.level))};
  if (!input.identifier.empty()) record.push_back("SYSLOG_IDENTIFIER=" + input.identifier);
  if (!input.fields.job_id.empty()) record.push_back("JOB_ID=" + input.fields.job_id);
  if (!input.fields.model.empty()) record.push_back("MODEL=" + input.fields.model);
  if (!input.fields.stage.empty()) record.push_back("STAGE=" + input.fields.stage);
  if (!input.code_file.empty()) {
    record.push_back("CODE_FILE=" + input.code_file);
    record.push_back("CODE_LINE=" + std::to_string(input.code_line));
  }
  if (!input.code_func.empty()) record.push_back("CODE_FUNC=" + input.code_func);
  return record;
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  const std::string_view text(stream);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  struct stat info {};
  if (::fstat(2, &info) != 0) return false;
  // systemd writes both numbers in decimal: "<st_dev>:<st_ino>".
  return text.substr(0, colon) == std::to_string(info.st_dev) && text.substr(colon + 1) == std::to_string(info.st_ino);
}

LogTarget parse_log_target(const std::string& text) {
  if (text == "auto") return LogTarget::automatic;
  if (text == "journal") return LogTarget::journal;
  if (text == "console") return LogTarget::console;
  throw Error(ErrorCode::invalid_argument, "log target: expected auto, journal or console, got '" + text + "'");
}

namespace {

class JournalRecordSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  JournalRecordSink(std::string identifier, JournalWriter write)
      : identifier_(std::move(identifier)), write_(std::move(write)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    JournalRecordInput input;
    input.message.assign(msg.payload.data(), msg.payload.size());
    input.level = msg.level;
    input.identifier = identifier_;
    input.fields = current_log_fields();  // the logging thread's: loggers here are synchronous
    if (!msg.source.empty()) {
      input.code_file = msg.source.filename;
      input.code_line = msg.source.line;
      input.code_func = msg.source.funcname ? msg.source.funcname : "";
    }
    write_(journal_record(input));
  }
  void flush_() override {}

 private:
  std::string identifier_;
  JournalWriter write_;
};

}  // namespace

std::shared_ptr<spdlog::sinks::sink> make_journal_record_sink(std::string identifier, JournalWriter write) {
  return std::make_shared<JournalRecordSink>(std::move(identifier), std::move(write));
}

#ifdef HEYGEM_HAVE_SYSTEMD
bool journal_supported() { return true; }

namespace {

void send_to_journal(const std::vector<std::string>& record) {
  std::vector<iovec> vectors;
  vectors.reserve(record.size());
  for (const auto& field : record) vectors.push_back(iovec{const_cast<char*>(field.data()), field.size()});
  ::sd_journal_sendv(vectors.data(), static_cast<int>(vectors.size()));
}

}  // namespace

std::shared_ptr<spdlog::logger> make_service_logger(const std::string& name, LogTarget target) {
  if (target == LogTarget::journal || (target == LogTarget::automatic && stderr_is_journal()))
    return std::make_shared<spdlog::logger>(name, make_journal_record_sink(name, send_to_journal));
  return std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
}
#else
bool journal_supported() { return false; }

std::shared_ptr<spdlog::logger> make_service_logger(const std::string& name, LogTarget target) {
  auto logger = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (target == LogTarget::journal)
    logger->warn("journald logging requested, but this build has no libsystemd: logging to stderr");
  return logger;
}
#endif

}  // namespace heygem::system
