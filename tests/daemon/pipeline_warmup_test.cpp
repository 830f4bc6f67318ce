// jobs::warm_pipeline (issue 16, item 3): which models each device's warm-up item runs, the item
// itself through the real pipeline on the device's forward queue, and failures that are warnings
// (the daemon goes on to READY), never exceptions.
#include "daemon/jobs/pipeline_warmup.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "daemon/residency/forward_queue.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::jobs {
namespace {

namespace fs = std::filesystem;

// What the default logger writes while this lives ("[warning] text").
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    sink->set_pattern("[%l] %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("pipeline-warmup-test", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

residency::ModelSpec spec(const std::string& name, residency::ModelKind kind, std::vector<std::string> devices,
                          bool preload) {
  residency::ModelSpec s;
  s.name = name;
  s.kind = kind;
  if (kind != residency::ModelKind::wav2lip) s.weights = name + ".pth";  // never loaded here
  s.devices = std::move(devices);
  s.preload = preload;
  return s;
}

// The hash-init generator alone on the CPU, with the smallest model warm-up (the item is the test).
residency::ResidencyConfig cpu_generator() {
  residency::ResidencyConfig config;
  config.models = {spec("wav2lip", residency::ModelKind::wav2lip, {"cpu"}, true)};
  config.default_generator = "wav2lip";
  config.warmup.generator_batch = 1;
  config.warmup.passes = 1;
  return config;
}

TEST(PipelineWarmup, PlansOneItemPerDeviceWithAPreloadedGeneratorAndItsDefaults) {
  residency::ResidencyConfig config;
  config.models = {spec("first", residency::ModelKind::wav2lip, {"cpu", "cpu:1"}, true),
                   spec("main", residency::ModelKind::wav2lip, {"cpu:1"}, true),
                   spec("lazy", residency::ModelKind::wav2lip, {"cpu:2"}, false),
                   spec("faces", residency::ModelKind::retinaface, {"cpu"}, true),
                   spec("boxes", residency::ModelKind::s3fd, {"cpu:1"}, false)};
  config.default_generator = "main";
  config.default_detector = "boxes";
  const auto registry = residency::make_model_registry(config);
  const auto plans = plan_pipeline_warmup(config, *registry);
  ASSERT_EQ(plans.size(), 2u);  // cpu:2 holds only a generator loaded on demand
  EXPECT_EQ(plans[0].device, "cpu");
  EXPECT_EQ(plans[0].generator, "first");
  EXPECT_EQ(plans[0].detector, "faces");  // the default detector is not preloaded: the one that is
  EXPECT_EQ(plans[1].device, "cpu:1");
  EXPECT_EQ(plans[1].generator, "main");  // the default generator wins where it is preloaded
  EXPECT_EQ(plans[1].detector, "");
  const auto only = plan_pipeline_warmup(config, *registry, {"cpu:1"});
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].device, "cpu:1");
}

TEST(PipelineWarmup, RendersOneItemOnTheDevicesForwardQueueAndLeavesNothingBehind) {
  const auto config = cpu_generator();
  const auto registry = residency::make_model_registry(config);
  registry->start();
  const auto batches_before = registry->acquire_generator("wav2lip", nullptr)->forwards().stats().batches;
  test::TempDir dir;
  PipelineWarmupSettings settings;
  settings.folder = dir.path() / "pipeline-warmup";
  std::vector<PipelineWarmupResult> results;
  std::string log;
  {
    CapturedLog captured;
    results = warm_pipeline(*registry, config, plan_pipeline_warmup(config, *registry), settings);
    log = captured.text();
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok()) << results[0].error;
  EXPECT_EQ(results[0].plan.device, "cpu");
  EXPECT_EQ(results[0].frames, 8);  // 0.32 s at 25 fps
  // The clip falls silent: some frames are passed through, and the first ones are generated.
  EXPECT_GT(results[0].frames_gated, 0);
  EXPECT_LT(results[0].frames_gated, results[0].frames);
  EXPECT_EQ(results[0].frame_path, "host");  // a CPU generator keeps frames in host memory
  EXPECT_GT(results[0].seconds, 0.0);
  EXPECT_NE(log.find("[info] pipeline warm-up on cpu: "), std::string::npos) << log;
  EXPECT_EQ(log.find("[warning]"), std::string::npos) << log;
  // The generator's forwards ran on the device's queue, as a job's do.
  EXPECT_GT(registry->acquire_generator("wav2lip", nullptr)->forwards().stats().batches, batches_before);
  EXPECT_FALSE(fs::exists(settings.folder));
  for (const auto& row : registry->status()) EXPECT_EQ(row.state, "warm") << row.name;  // no lease left
}

// A preloaded model whose keep_alive expired (or that was unloaded) is not loaded for the warm-up:
// that device's item is skipped.
TEST(PipelineWarmup, AGeneratorThatIsNoLongerLoadedIsNotLoadedForIt) {
  const auto config = cpu_generator();
  const auto registry = residency::make_model_registry(config);
  registry->start();
  ASSERT_EQ(registry->unload("wav2lip"), 1u);
  test::TempDir dir;
  PipelineWarmupSettings settings;
  settings.folder = dir.path() / "pipeline-warmup";
  std::vector<PipelineWarmupResult> results;
  std::string log;
  {
    CapturedLog captured;
    results = warm_pipeline(*registry, config, plan_pipeline_warmup(config, *registry), settings);
    log = captured.text();
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok()) << results[0].error;
  EXPECT_NE(results[0].skipped, "");
  EXPECT_EQ(results[0].frames, 0);
  EXPECT_NE(log.find("[info] pipeline warm-up on cpu skipped: wav2lip is not loaded there"), std::string::npos) << log;
  EXPECT_EQ(registry->status().at(0).state, "unloaded");
  EXPECT_FALSE(fs::exists(settings.folder));
}

TEST(PipelineWarmup, AFolderThatCannotBeMadeIsAWarningNotAnError) {
  const auto config = cpu_generator();
  const auto registry = residency::make_model_registry(config);  // not started: nothing may be loaded
  test::TempDir dir;
  std::ofstream(dir.path() / "file") << "not a folder";
  PipelineWarmupSettings settings;
  settings.folder = dir.path() / "file" / "pipeline-warmup";
  std::vector<PipelineWarmupResult> results;
  std::string log;
  {
    CapturedLog captured;
    EXPECT_NO_THROW(results = warm_pipeline(*registry, config, plan_pipeline_warmup(config, *registry), settings));
    log = captured.text();
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_NE(results[0].error.find("pipeline-warmup"), std::string::npos) << results[0].error;
  EXPECT_NE(log.find("[warning] pipeline warm-up on cpu not run: "), std::string::npos) << log;
  EXPECT_EQ(registry->status().at(0).state, "unloaded");
}

TEST(PipelineWarmup, AFailingItemIsAWarningAndItsFolderIsRemoved) {
  const auto config = cpu_generator();
  const auto registry = residency::make_model_registry(config);
  registry->start();
  test::TempDir dir;
  PipelineWarmupSettings settings;
  settings.folder = dir.path() / "pipeline-warmup";
  settings.seconds = 0.04;  // one frame: its audio track is shorter than one mel window
  std::vector<PipelineWarmupResult> results;
  std::string log;
  {
    CapturedLog captured;
    EXPECT_NO_THROW(results = warm_pipeline(*registry, config, plan_pipeline_warmup(config, *registry), settings));
    log = captured.text();
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].error.find("too short"), std::string::npos) << results[0].error;
  EXPECT_NE(log.find("[warning] pipeline warm-up on cpu failed after "), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(settings.folder));
  // The models stay warm and free for the jobs.
  EXPECT_EQ(registry->status().at(0).state, "warm");
  EXPECT_EQ(registry->status().at(0).leases, 0);
}

TEST(PipelineWarmup, AStoppingDaemonStopsTheItemWithoutAWarning) {
  const auto config = cpu_generator();
  const auto registry = residency::make_model_registry(config);
  registry->start();
  test::TempDir dir;
  PipelineWarmupSettings settings;
  settings.folder = dir.path() / "pipeline-warmup";
  settings.cancelled = [] { return true; };
  std::vector<PipelineWarmupResult> results;
  std::string log;
  {
    CapturedLog captured;
    results = warm_pipeline(*registry, config, plan_pipeline_warmup(config, *registry), settings);
    log = captured.text();
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_NE(log.find("[info] pipeline warm-up on cpu stopped after "), std::string::npos) << log;
  EXPECT_EQ(log.find("[warning]"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(settings.folder));
}

}  // namespace
}  // namespace heygem::jobs
