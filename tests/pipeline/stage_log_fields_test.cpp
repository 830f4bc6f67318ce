// The journal fields of log lines written inside the pipeline's stages (issue 6): each stage thread
// carries the caller's JOB_ID, its own STAGE and the MODEL it runs, through the journal logger's
// record sink (the one heygemd writes to sd_journal_sendv with).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "daemon/models/retinaface.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "daemon/system/journal_log.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

using Record = std::vector<std::string>;

std::string field(const Record& record, const std::string& name) {
  for (const auto& entry : record)
    if (entry.rfind(name + "=", 0) == 0) return entry.substr(name.size() + 1);
  return "";
}

TEST(StageLogFields, LinesInsideEachStageCarryJobStageAndModel) {
  test::TempDir dir;
  const auto video = dir.path() / "grey.mkv", audio = dir.path() / "tone.wav";
  media::test::run_ffmpeg("-f lavfi -i color=c=gray:s=64x48:r=25 -frames:v 6 -c:v ffv1 '" + video.string() + "'");
  media::test::run_ffmpeg("-f lavfi -i \"sine=frequency=440:sample_rate=16000:duration=0.3\" '" + audio.string() + "'");
  auto generator = models::Wav2LipGenerator::untrained(models::Placement{}, models::HashInitSpec{});
  auto detector = models::RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth",
                                                         models::Placement{});

  std::mutex mutex;  // stage threads log at the same time
  std::vector<Record> records;
  auto logger = std::make_shared<spdlog::logger>(
      "stage-test", system::make_journal_record_sink("heygemd", [&](const Record& record) {
        std::lock_guard lock(mutex);
        records.push_back(record);
      }));
  // Polled from every stage thread between frames: a log line emitted inside each stage.
  RunHooks hooks;
  hooks.cancelled = [&] {
    logger->info("stage poll");
    return false;
  };
  hooks.progress = [&](const ItemProgress& progress) { logger->info("progress {}", progress.stage); };
  ItemOptions options;
  options.encode.preset = "ultrafast";
  ItemModels models{generator.get(), detector.get(), "lips", "faces"};
  {
    const system::ScopedLogFields job({"job-42", "lips", ""});
    run_lip_sync({audio, video, dir.path() / "out.mp4", dir.path()}, options, models, hooks);
  }

  std::map<std::string, std::set<std::string>> models_by_stage;
  for (const auto& record : records) {
    if (field(record, "STAGE").empty()) continue;
    EXPECT_EQ(field(record, "JOB_ID"), "job-42") << field(record, "MESSAGE");
    models_by_stage[field(record, "STAGE")].insert(field(record, "MODEL"));
  }
  using Models = std::set<std::string>;
  EXPECT_EQ(models_by_stage["audio"], Models{"lips"});
  EXPECT_EQ(models_by_stage["decode"], Models{"lips"});
  EXPECT_EQ(models_by_stage["detect"], Models{"faces"});
  EXPECT_EQ(models_by_stage["generate"], Models{"lips"});
  EXPECT_EQ(models_by_stage["encode"], Models{"lips"});
  // The caller's fields are back once the item is done.
  EXPECT_TRUE(system::current_log_fields().job_id.empty());
  EXPECT_TRUE(system::current_log_fields().stage.empty());
}

}  // namespace
}  // namespace heygem::pipeline
