// ModelRegistry on the CPU with real models: the untrained (hash-init) generator and the real
// RetinaFace mobilenet0.25 weights from shared/models. Intervals are shrunk to keep the suite quick.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "daemon/models/checkpoint.hpp"
#include "daemon/models/face_detector.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/residency/model_registry.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"

namespace heygem::residency {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path retinaface_weights() { return test::shared_root() / "models" / "retinaface_mobilenet0.25.pth"; }

// Parameter + buffer bytes of a float32 checkpoint, computed from the file itself.
std::uint64_t checkpoint_bytes(const fs::path& file) {
  std::uint64_t bytes = 0;
  for (const auto& [name, tensor] : models::load_state_dict(file))
    bytes += static_cast<std::uint64_t>(tensor.numel()) * tensor.element_size();
  return bytes;
}

// The warm-up at the fixtures' shapes: the wav2lip fixture's batch, RetinaFace's fixture frame size.
WarmupShapes fixture_warmup() {
  WarmupShapes shapes;
  shapes.generator_batch = test::manifest("wav2lip").at("meta").at("batch").get<int>();
  shapes.detector_batch = 1;
  for (const auto& entry : test::manifest("retinaface").at("files"))
    if (entry.value("file", "") == "input_0.f32") {
      shapes.frame_height = entry.at("shape")[2].get<int>();
      shapes.frame_width = entry.at("shape")[3].get<int>();
    }
  shapes.passes = 1;
  return shapes;
}

ModelSpec detector_spec(const std::string& name, const fs::path& weights, bool preload) {
  ModelSpec spec;
  spec.name = name;
  spec.kind = ModelKind::retinaface;
  spec.weights = weights;
  spec.preload = preload;
  return spec;
}

ModelSpec untrained_generator_spec(const std::string& name) {
  ModelSpec spec;
  spec.name = name;
  spec.kind = ModelKind::wav2lip;
  return spec;
}

ResidencyConfig config_of(std::vector<ModelSpec> models) {
  ResidencyConfig config;
  config.models = std::move(models);
  for (const auto& spec : config.models) {
    if (spec.kind == ModelKind::wav2lip && config.default_generator.empty()) config.default_generator = spec.name;
    if (spec.kind != ModelKind::wav2lip && config.default_detector.empty()) config.default_detector = spec.name;
  }
  config.heartbeat_interval = 1h;  // tests that need heartbeats shrink it
  config.warmup = fixture_warmup();
  return config;
}

ModelStatus row(const ModelRegistry& registry, const std::string& name) {
  for (const auto& status : registry.status())
    if (status.name == name) return status;
  ADD_FAILURE() << "no status row for " << name;
  return {};
}

// Polls `condition` every 20 ms for at most `limit`.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// A scratch folder per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() : path_(fs::temp_directory_path() / ("heygem-residency-" + std::to_string(::getpid()) + "-" +
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs /usr/bin/python3 (Debian's, with torch) on `script`; false when that interpreter has no torch.
bool run_python_torch(const std::string& script, const fs::path& scratch) {
  const fs::path file = scratch / "script.py";
  std::ofstream(file) << script;
  return std::system(("/usr/bin/python3 " + file.string() + " >/dev/null 2>&1").c_str()) == 0;
}

class Residency : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    at::set_num_threads(1);
  }
};

TEST_F(Residency, PreloadWarmsEveryModelBeforeStartReturns) {
  auto registry = make_model_registry(config_of({untrained_generator_spec("wav2lip"), detector_spec("retinaface", retinaface_weights(), true)}));
  for (const auto& status : registry->status()) EXPECT_EQ(status.state, "unloaded") << status.name;
  registry->start();

  const auto generator = row(*registry, "wav2lip");
  EXPECT_EQ(generator.state, "warm");
  EXPECT_TRUE(generator.untrained);
  EXPECT_NE(generator.source.find("untrained"), std::string::npos) << generator.source;
  EXPECT_GT(generator.load_seconds, 0);
  EXPECT_GT(generator.warmup_seconds, 0);
  EXPECT_EQ(generator.generation, 1u);
  EXPECT_TRUE(generator.loaded_at.has_value());
  const auto detector = row(*registry, "retinaface");
  EXPECT_EQ(detector.state, "warm");
  EXPECT_FALSE(detector.untrained);
  EXPECT_EQ(detector.resident_bytes, checkpoint_bytes(retinaface_weights()));
  EXPECT_TRUE(registry->healthy());
  for (const auto& status : {generator, detector}) {  // in the XML report (--gtest_output=xml)
    RecordProperty(status.name + "_load_seconds", std::to_string(status.load_seconds));
    RecordProperty(status.name + "_warmup_seconds", std::to_string(status.warmup_seconds));
    RecordProperty(status.name + "_resident_bytes", std::to_string(status.resident_bytes));
  }

  int loading_calls = 0;
  auto lease = registry->acquire_generator("", [&](const std::string&) { ++loading_calls; });
  EXPECT_EQ(loading_calls, 0) << "a preloaded model must not show a loading stage";
  ASSERT_NE(lease->generator(), nullptr);
  EXPECT_EQ(lease->detector(), nullptr);
  const auto out = lease->generator()->generate(at::rand({1, 1, 80, 16}), at::rand({1, 6, 96, 96}));
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{1, 3, 96, 96}));
  EXPECT_EQ(row(*registry, "wav2lip").state, "busy");
  lease.reset();
  EXPECT_EQ(row(*registry, "wav2lip").state, "warm");
}

TEST_F(Residency, LazyLoadIsSharedByConcurrentAcquirers) {
  auto registry = make_model_registry(config_of({detector_spec("retinaface", retinaface_weights(), false)}));
  registry->start();
  EXPECT_EQ(row(*registry, "retinaface").state, "unloaded");

  std::atomic<int> loading_calls[2] = {0, 0};
  std::string loading_names[2];
  std::shared_ptr<ModelLease> leases[2];
  std::barrier together(2);
  std::vector<std::thread> jobs;
  for (int job = 0; job < 2; ++job)
    jobs.emplace_back([&, job] {
      together.arrive_and_wait();
      // One job names the model, the other asks for the default detector, which it is.
      leases[job] = registry->acquire_detector(job == 0 ? "retinaface" : "", [&, job](const std::string& model) {
        ++loading_calls[job];
        loading_names[job] = model;
      });
    });
  for (auto& job : jobs) job.join();

  EXPECT_EQ(loading_calls[0] + loading_calls[1], 2) << "each waiting job shows the loading stage once";
  EXPECT_EQ(loading_names[0], "retinaface");
  EXPECT_EQ(loading_names[1], "retinaface") << "the loading stage names the configured model, not \"default\"";
  EXPECT_EQ(row(*registry, "retinaface").generation, 1u) << "two acquirers, one load";
  ASSERT_NE(leases[0]->detector(), nullptr);
  EXPECT_EQ(leases[0]->detector(), leases[1]->detector());
  EXPECT_EQ(row(*registry, "retinaface").leases, 2);
}

TEST_F(Residency, KeepAliveExpiryIsVisibleInStatus) {
  auto timed = detector_spec("timed", retinaface_weights(), true);
  timed.keep_alive = 400ms;
  auto immediate = detector_spec("immediate", retinaface_weights(), false);
  immediate.keep_alive = 0ms;
  auto forever = detector_spec("forever", retinaface_weights(), true);
  auto registry = make_model_registry(config_of({timed, immediate, forever}));
  registry->start();

  EXPECT_FALSE(row(*registry, "forever").expires_at.has_value());
  auto lease = registry->acquire_detector("timed", {});
  EXPECT_FALSE(row(*registry, "timed").expires_at.has_value()) << "no expiry while in use";
  const auto released_at = std::chrono::system_clock::now();
  lease.reset();
  const auto until = row(*registry, "timed").expires_at;
  ASSERT_TRUE(until.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*until - released_at).count(), 0.4, 0.15);
  EXPECT_TRUE(eventually([&] { return row(*registry, "timed").state == "unloaded"; }));
  EXPECT_FALSE(row(*registry, "timed").expires_at.has_value());

  registry->acquire_detector("immediate", {}).reset();  // used once, unloaded as soon as it is idle
  EXPECT_TRUE(eventually([&] { return row(*registry, "immediate").state == "unloaded"; }, 2s));
  EXPECT_EQ(row(*registry, "forever").state, "warm");
}

TEST_F(Residency, LeastRecentlyUsedIdleModelsAreEvictedUnderTheBudget) {
  const auto bytes = checkpoint_bytes(retinaface_weights());
  auto config = config_of({detector_spec("a", retinaface_weights(), false), detector_spec("b", retinaface_weights(), false),
                           detector_spec("c", retinaface_weights(), false)});
  config.memory_budget_bytes = bytes * 5 / 2;  // room for two
  auto registry = make_model_registry(config);
  registry->start();

  registry->load("a");
  registry->load("b");
  registry->acquire_detector("a", {}).reset();  // a is now more recently used than b
  registry->load("c");
  EXPECT_EQ(row(*registry, "a").state, "warm");
  EXPECT_EQ(row(*registry, "b").state, "unloaded") << "b was the least recently used";
  EXPECT_EQ(row(*registry, "c").state, "warm");

  auto hold_a = registry->acquire_detector("a", {});
  auto hold_c = registry->acquire_detector("c", {});
  try {
    registry->acquire_detector("b", {});
    FAIL() << "b fitted although a and c are in use";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::resource);
    EXPECT_NE(std::string(error.what()).find("budget"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("model b"), std::string::npos) << error.what();
  }
  EXPECT_EQ(row(*registry, "a").state, "busy") << "a model in use is never unloaded";
  EXPECT_EQ(row(*registry, "c").state, "busy");

  hold_c.reset();
  auto hold_b = registry->acquire_detector("b", {});
  EXPECT_EQ(row(*registry, "c").state, "unloaded") << "c was the only idle model";
  EXPECT_EQ(row(*registry, "a").state, "busy");
  EXPECT_EQ(row(*registry, "b").state, "busy");
}

TEST_F(Residency, HeartbeatRunsAndIsSkippedWhileTheDeviceIsBusy) {
  auto config = config_of({detector_spec("retinaface", retinaface_weights(), true)});
  config.heartbeat_interval = 200ms;
  auto registry = make_model_registry(config);
  registry->start();

  ASSERT_TRUE(eventually([&] { return row(*registry, "retinaface").heartbeats >= 2; }));
  EXPECT_GT(row(*registry, "retinaface").last_heartbeat_ms, 0);
  EXPECT_TRUE(row(*registry, "retinaface").last_heartbeat_at.has_value());

  registry->set_device_busy("cpu", true);
  std::this_thread::sleep_for(300ms);  // a heartbeat already running may finish
  const auto while_busy = row(*registry, "retinaface").heartbeats;
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(row(*registry, "retinaface").heartbeats, while_busy) << "heartbeats ran while a job had the device";

  registry->set_device_busy("cpu", false);
  EXPECT_TRUE(eventually([&] { return row(*registry, "retinaface").heartbeats > while_busy; }));
}

TEST_F(Residency, BrokenWeightsOnReloadLeaveTheOldModelServing) {
  ScratchDir scratch;
  const fs::path weights = scratch.path() / "retinaface.pth";
  fs::copy_file(retinaface_weights(), weights);
  auto config = config_of({detector_spec("retinaface", weights, true)});
  auto registry = make_model_registry(config);
  registry->start();
  auto running_job = registry->acquire_detector("", {});
  const auto* old_detector = running_job->detector();

  // A new weights path that holds half a checkpoint.
  const fs::path truncated = scratch.path() / "truncated.pth";
  {
    std::ifstream in(retinaface_weights(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  auto broken = config;
  broken.models[0].weights = truncated;
  EXPECT_THROW(registry->reload(broken), Error);
  // The same path overwritten with garbage: noticed by its changed size and time.
  std::ofstream(weights, std::ios::binary | std::ios::trunc) << "not a checkpoint";
  try {
    registry->reload(config);
    FAIL() << "a garbage weights file was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("retinaface"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("previous models keep serving"), std::string::npos) << error.what();
  }
  EXPECT_EQ(row(*registry, "retinaface").generation, 1u);
  EXPECT_TRUE(registry->healthy());
  auto next_job = registry->acquire_detector("", {});
  EXPECT_EQ(next_job->detector(), old_detector) << "new jobs still get the old instance";
  next_job.reset();

  // A good new file swaps in for new acquires; the running job keeps its instance.
  fs::copy_file(retinaface_weights(), weights, fs::copy_options::overwrite_existing);
  auto good = config;
  good.models[0].weights = retinaface_weights();
  registry->reload(good);
  EXPECT_EQ(row(*registry, "retinaface").generation, 2u);
  auto after_reload = registry->acquire_detector("", {});
  EXPECT_NE(after_reload->detector(), old_detector);
  const auto shapes = fixture_warmup();
  const auto frames = at::zeros({1, shapes.frame_height, shapes.frame_width, 3}, at::kByte);
  EXPECT_NO_THROW(running_job->detector()->detect(frames)) << "the old instance outlives the swap while leased";
}

TEST_F(Residency, NanProducingModelIsMarkedUnhealthyAndRecovers) {
  ScratchDir scratch;
  const fs::path nan_weights = scratch.path() / "retinaface_nan.pth";
  const bool written = run_python_torch(
      "import torch\n"
      "weights = torch.load('" + retinaface_weights().string() + "', map_location='cpu')\n"
      "for name, tensor in weights.items():\n"
      "    if tensor.is_floating_point():\n"
      "        tensor.fill_(float('nan'))\n"
      "torch.save(weights, '" + nan_weights.string() + "')\n",
      scratch.path());
  if (!written) GTEST_SKIP() << "/usr/bin/python3 with torch is needed to write the NaN checkpoint";

  // Preloaded: the daemon must not become ready with it.
  auto preloaded = make_model_registry(config_of({detector_spec("nan", nan_weights, true)}));
  try {
    preloaded->start();
    FAIL() << "start() returned with a NaN model";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("NaN"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("nan"), std::string::npos) << "names the model: " << error.what();
  }
  EXPECT_FALSE(preloaded->healthy());
  EXPECT_EQ(row(*preloaded, "nan").state, "unhealthy");
  preloaded->stop();

  // Lazy: the job gets the cause; once the file is fixed the next acquire loads it healthy.
  auto config = config_of({detector_spec("nan", nan_weights, false)});
  auto registry = make_model_registry(config);
  registry->start();
  EXPECT_TRUE(registry->healthy());
  EXPECT_THROW(registry->acquire_detector("nan", {}), Error);
  EXPECT_EQ(row(*registry, "nan").state, "unhealthy");
  EXPECT_NE(row(*registry, "nan").error.find("NaN"), std::string::npos);
  EXPECT_FALSE(registry->healthy());
  fs::copy_file(retinaface_weights(), nan_weights, fs::copy_options::overwrite_existing);
  auto lease = registry->acquire_detector("nan", {});
  EXPECT_NE(lease->detector(), nullptr);
  EXPECT_TRUE(registry->healthy());
  EXPECT_EQ(row(*registry, "nan").state, "busy");
}

TEST_F(Residency, TwoCpuReplicasEachHoldTheirOwnWarmCopy) {
  auto generator = untrained_generator_spec("wav2lip");
  auto detector = detector_spec("retinaface", retinaface_weights(), true);
  generator.devices = detector.devices = {"cpu:0", "cpu:1"};
  auto registry = make_model_registry(config_of({generator, detector}));
  EXPECT_EQ(registry->replicas("wav2lip", true), (std::vector<std::string>{"cpu", "cpu:1"}));
  EXPECT_EQ(registry->replicas("", false), (std::vector<std::string>{"cpu", "cpu:1"}));
  EXPECT_TRUE(registry->replicas("nothing", true).empty());
  registry->start();

  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& status : registry->status()) {
    rows.emplace_back(status.name, status.device);
    EXPECT_EQ(status.state, "warm") << status.name << " on " << status.device;
  }
  const std::vector<std::pair<std::string, std::string>> expected{
      {"wav2lip", "cpu"}, {"wav2lip", "cpu:1"}, {"retinaface", "cpu"}, {"retinaface", "cpu:1"}};
  EXPECT_EQ(rows, expected);

  // Each replica is its own model object; leasing one leaves the other idle.
  auto on_first = registry->acquire_generator("wav2lip", "cpu", {});
  auto on_second = registry->acquire_generator("wav2lip", "cpu:1", {});
  ASSERT_TRUE(on_first->generator() && on_second->generator());
  EXPECT_NE(on_first->generator(), on_second->generator());
  EXPECT_THROW(registry->acquire_generator("wav2lip", "cpu:2", {}), Error);  // no replica there
  on_first.reset();
  on_second.reset();
  // Unload and load act on every replica of the model.
  EXPECT_EQ(registry->unload("wav2lip"), 2u);
  for (const auto& status : registry->status())
    EXPECT_EQ(status.state, status.name == "wav2lip" ? "unloaded" : "warm") << status.name << " on " << status.device;
  registry->load("wav2lip");
  for (const auto& status : registry->status()) EXPECT_EQ(status.state, "warm") << status.name << " on " << status.device;
}

TEST_F(Residency, ReloadAddsAndRemovesReplicasAndKeepsTheUnchangedOneServing) {
  auto generator = untrained_generator_spec("wav2lip");
  generator.devices = {"cpu"};
  auto registry = make_model_registry(config_of({generator}));
  registry->start();
  auto kept = registry->acquire_generator("wav2lip", "cpu", {});
  const auto* kept_generator = kept->generator();
  kept.reset();

  auto two = generator;
  two.devices = {"cpu", "cpu:1"};
  registry->reload(config_of({two}));
  EXPECT_EQ(registry->replicas("wav2lip", true), (std::vector<std::string>{"cpu", "cpu:1"}));
  std::vector<std::string> devices;
  for (const auto& status : registry->status()) {
    devices.push_back(status.device);
    EXPECT_EQ(status.state, "warm") << status.device;  // the new replica is preloaded by the reload
  }
  EXPECT_EQ(devices, (std::vector<std::string>{"cpu", "cpu:1"}));
  EXPECT_EQ(registry->acquire_generator("wav2lip", "cpu", {})->generator(), kept_generator)
      << "the unchanged replica was reloaded";

  auto other = generator;
  other.devices = {"cpu:1"};
  registry->reload(config_of({other}));
  EXPECT_EQ(registry->replicas("wav2lip", true), std::vector<std::string>{"cpu:1"});
  ASSERT_EQ(registry->status().size(), 1u);
  EXPECT_EQ(registry->status()[0].device, "cpu:1");
  EXPECT_THROW(registry->acquire_generator("wav2lip", "cpu", {}), Error);
}

TEST_F(Residency, ACudaDeviceOnACpuOnlyBuildNamesTheGpuBuildAndTheLine) {
  if (at::hasCUDA()) GTEST_SKIP() << "this build has CUDA";
  auto generator = untrained_generator_spec("wav2lip");
  generator.devices = {"cpu", "cuda:1"};
  generator.origin = "heygemd.yaml: line 7: models.entries[0]";
  auto config = config_of({generator});
  try {
    validate_config(config);
    FAIL() << "a CPU-only build accepted cuda:1";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("heygemd.yaml: line 7"), std::string::npos) << message;
    EXPECT_NE(message.find("scripts/setup.sh --gpu"), std::string::npos) << message;
  }
  generator.devices = {"all"};
  EXPECT_EQ(replica_devices(generator), std::vector<std::string>{"cpu"});
  generator.devices = {"auto"};
  EXPECT_EQ(replica_devices(generator), std::vector<std::string>{"cpu"});
  EXPECT_EQ(auto_device().device, "cpu");
  EXPECT_NE(auto_device().reason.find("CPU-only build"), std::string::npos) << auto_device().reason;
}

TEST_F(Residency, BadNamesKindsAndUnloadRequestsAreRefusedWithReasons) {
  auto config = config_of({detector_spec("retinaface", retinaface_weights(), true)});
  auto registry = make_model_registry(config);
  registry->start();
  try {
    registry->acquire_generator("retinaface", {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("not a generator"), std::string::npos) << error.what();
  }
  try {
    registry->acquire_detector("s3fd_missing", {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::not_found);
  }
  EXPECT_THROW(registry->acquire_generator("", {}), Error);  // no generator configured

  auto lease = registry->acquire_detector("", {});
  EXPECT_THROW(registry->unload("retinaface"), Error);  // in use
  EXPECT_EQ(registry->unload(""), 0u);
  lease.reset();
  EXPECT_EQ(registry->unload(""), 1u);
  EXPECT_EQ(row(*registry, "retinaface").state, "unloaded");

  auto bad_default = config;
  bad_default.default_generator = "retinaface";
  EXPECT_THROW(make_model_registry(bad_default), Error);
  auto duplicate = config;
  duplicate.models.push_back(duplicate.models[0]);
  EXPECT_THROW(make_model_registry(duplicate), Error);
}

// Float32 tensors as a safetensors file (u64 header length, JSON header padded to 8 bytes, data).
void write_safetensors(const fs::path& file, const models::StateDict& weights) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : weights) {
    const auto bytes = static_cast<std::uint64_t>(tensor.numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(file, std::ios::binary);
  const std::uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), sizeof(length));
  out << text;
  for (const auto& [name, tensor] : weights) {
    const at::Tensor data = tensor.contiguous().to(at::kFloat);
    out.write(reinterpret_cast<const char*>(data.data_ptr<float>()), static_cast<std::streamsize>(data.numel() * 4));
  }
  ASSERT_TRUE(out.good()) << file;
}

TEST_F(Residency, GfpganRestorerLoadsByNameWarmsAndRestoresLikeTheReference) {
  ScratchDir scratch;
  const fs::path weights = scratch.path() / "gfpgan.safetensors";
  write_safetensors(weights, models::hash_init(models::gfpgan_layout(), test::hash_init_spec("gfpgan")));
  ModelSpec gfpgan;
  gfpgan.name = "face_restorer";
  gfpgan.kind = ModelKind::gfpgan;
  gfpgan.weights = weights;
  auto config = config_of({detector_spec("retinaface", retinaface_weights(), false), gfpgan});
  config.default_detector = "retinaface";
  config.warmup.restorer_batch = 1;
  auto registry = make_model_registry(config);
  registry->start();  // preloads and warms the restorer
  const ModelStatus status = row(*registry, "face_restorer");
  EXPECT_EQ(status.kind, "gfpgan");
  EXPECT_EQ(status.state, "warm");
  EXPECT_GT(status.resident_bytes, 0u);

  auto lease = registry->acquire_restorer("", {});  // the only gfpgan entry
  ASSERT_NE(lease->restorer(), nullptr);
  EXPECT_EQ(lease->generator(), nullptr);
  const auto input = test::load_raw("gfpgan", "input.f32");
  const auto expected = test::load_raw("gfpgan", "output.f32");
  const at::Tensor output =
      lease->restorer()->restore(at::from_blob(const_cast<float*>(input.f32.data()), input.shape, at::kFloat));
  const at::Tensor reference = at::from_blob(const_cast<float*>(expected.f32.data()), expected.shape, at::kFloat);
  EXPECT_LE((output - reference).abs().max().item<double>(), 1e-4);
  try {
    registry->acquire_detector("face_restorer", {});
    FAIL() << "a restorer was handed out as a detector";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
  }
}

TEST_F(Residency, EnhanceWithoutGfpganWeightsNamesTheFileToBring) {
  auto config = config_of({detector_spec("retinaface", retinaface_weights(), false)});
  auto registry = make_model_registry(config);
  try {
    registry->acquire_restorer("", {});
    FAIL() << "acquired a restorer that is not configured";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("GFPGANv1.4.pth"), std::string::npos) << error.what();
  }
  ModelSpec no_weights;
  no_weights.name = "gfpgan";
  no_weights.kind = ModelKind::gfpgan;
  config.models.push_back(no_weights);
  try {
    make_model_registry(config);
    FAIL() << "a gfpgan model without weights was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("needs a weights file"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace heygem::residency
