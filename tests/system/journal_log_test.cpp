// The journald record builder, the per-thread fields and the JOURNAL_STREAM detection.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::system {
namespace {

bool contains(const std::vector<std::string>& record, const std::string& field) {
  return std::find(record.begin(), record.end(), field) != record.end();
}

TEST(JournalLog, RecordCarriesMessagePriorityAndTheJobFields) {
  JournalRecordInput input;
  input.message = "generator batch 3/9";
  input.level = spdlog::level::warn;
  input.identifier = "heygemd";
  input.fields = {"job-17", "wav2lip_gan", "generate"};
  input.code_file = "lip_sync.cpp";
  input.code_line = 42;
  const auto record = journal_record(input);
  EXPECT_EQ(record.front(), "MESSAGE=generator batch 3/9");
  EXPECT_TRUE(contains(record, "PRIORITY=4"));
  EXPECT_TRUE(contains(record, "SYSLOG_IDENTIFIER=heygemd"));
  EXPECT_TRUE(contains(record, "JOB_ID=job-17"));
  EXPECT_TRUE(contains(record, "MODEL=wav2lip_gan"));
  EXPECT_TRUE(contains(record, "STAGE=generate"));
  EXPECT_TRUE(contains(record, "CODE_FILE=lip_sync.cpp"));
  EXPECT_TRUE(contains(record, "CODE_LINE=42"));
}

TEST(JournalLog, EmptyFieldsAreLeftOut) {
  JournalRecordInput input;
  input.message = "daemon ready";
  const auto record = journal_record(input);
  EXPECT_EQ(record, (std::vector<std::string>{"MESSAGE=daemon ready", "PRIORITY=6"}));
}

TEST(JournalLog, SyslogPrioritiesFollowTheLevels) {
  EXPECT_EQ(syslog_priority(spdlog::level::critical), 2);
  EXPECT_EQ(syslog_priority(spdlog::level::err), 3);
  EXPECT_EQ(syslog_priority(spdlog::level::warn), 4);
  EXPECT_EQ(syslog_priority(spdlog::level::info), 6);
  EXPECT_EQ(syslog_priority(spdlog::level::debug), 7);
  EXPECT_EQ(syslog_priority(spdlog::level::trace), 7);
}

TEST(JournalLog, ScopedFieldsNestPerThreadAndRestore) {
  {
    ScopedLogFields job({"job-1", "", "decode"});
    {
      ScopedLogFields stage({"", "retinaface", "detect"});
      EXPECT_EQ(current_log_fields().job_id, "job-1");
      EXPECT_EQ(current_log_fields().model, "retinaface");
      EXPECT_EQ(current_log_fields().stage, "detect");
      std::thread other([] { EXPECT_TRUE(current_log_fields().job_id.empty()); });
      other.join();
    }
    EXPECT_EQ(current_log_fields().stage, "decode");
    EXPECT_TRUE(current_log_fields().model.empty());
  }
  EXPECT_TRUE(current_log_fields().job_id.empty());
}

TEST(JournalLog, TheSinkWritesTheLoggingThreadsFieldsAndCallSite) {
  std::vector<std::vector<std::string>> records;
  spdlog::logger logger("heygemd-test",
                        make_journal_record_sink("heygemd", [&](const std::vector<std::string>& record) { records.push_back(record); }));
  logger.set_level(spdlog::level::debug);
  {
    ScopedLogFields job({"job-9", "wav2lip", ""});
    std::thread stage_thread([&] {
      // A stage thread starts empty and takes the job's fields with its own STAGE, as the pipeline does.
      ScopedLogFields stage({"job-9", "retinaface", "detect"});
      SPDLOG_LOGGER_WARN(&logger, "batch of {} frames", 4);
    });
    stage_thread.join();
    logger.info("item done");
  }
  logger.debug("idle");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].front(), "MESSAGE=batch of 4 frames");
  EXPECT_TRUE(contains(records[0], "PRIORITY=4"));
  EXPECT_TRUE(contains(records[0], "SYSLOG_IDENTIFIER=heygemd"));
  EXPECT_TRUE(contains(records[0], "JOB_ID=job-9"));
  EXPECT_TRUE(contains(records[0], "MODEL=retinaface"));
  EXPECT_TRUE(contains(records[0], "STAGE=detect"));
  EXPECT_TRUE(std::any_of(records[0].begin(), records[0].end(),
                          [](const std::string& f) { return f.rfind("CODE_FILE=", 0) == 0 && f.find("journal_log_test.cpp") != std::string::npos; }));
  EXPECT_TRUE(contains(records[1], "JOB_ID=job-9"));
  EXPECT_TRUE(contains(records[1], "MODEL=wav2lip"));
  EXPECT_FALSE(std::any_of(records[1].begin(), records[1].end(), [](const std::string& f) { return f.rfind("STAGE=", 0) == 0; }));
  EXPECT_EQ(records[2], (std::vector<std::string>{"MESSAGE=idle", "PRIORITY=7", "SYSLOG_IDENTIFIER=heygemd"}));
}

TEST(JournalLog, JournalStreamMustNameStderr) {
  struct stat info {};
  ASSERT_EQ(::fstat(2, &info), 0);
  const std::string matching = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
  ::setenv("JOURNAL_STREAM", matching.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  const std::string other = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_FALSE(stderr_is_journal());  // inherited by a child whose stderr was redirected
  ::setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(stderr_is_journal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
}

TEST(JournalLog, LogTargetParsing) {
  EXPECT_EQ(parse_log_target("auto"), LogTarget::automatic);
  EXPECT_EQ(parse_log_target("journal"), LogTarget::journal);
  EXPECT_EQ(parse_log_target("console"), LogTarget::console);
  try {
    parse_log_target("syslog");
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("syslog"), std::string::npos);
  }
}

TEST(JournalLog, ConsoleLoggerWhenStderrIsNotTheJournal) {
  ::unsetenv("JOURNAL_STREAM");
  auto logger = make_service_logger("heygemd-test", LogTarget::automatic);
  ASSERT_NE(logger, nullptr);
  EXPECT_EQ(logger->name(), "heygemd-test");
  EXPECT_EQ(logger->sinks().size(), 1u);
}

}  // namespace
}  // namespace heygem::system
