// Cluster mode end to end (issue 18): a real redis-server (appendonly) on 127.0.0.1 in a temporary
// folder, real heygemd processes with separate state folders as the boxes, the real heygemctl as
// the clients, the real pipeline on 1-second GRID cuts with the fixed box and fast x264 settings.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/cluster/cluster_wire.hpp"
#include "common/cluster/redis_connection.hpp"
#include "tests/integration/process.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using cluster::RedisConnection;
using cluster::RedisValue;

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A redis-server of its own: append-only with fsync on every write, so a restart loses nothing.
class RedisServer {
 public:
  explicit RedisServer(fs::path dir) : dir_(std::move(dir)), port_(free_tcp_port()) { start(); }
  void start() {
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", std::to_string(port_), "--dir",
                                 dir_.string(), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                                 "--daemonize", "no"},
        dir_ / "redis.log");
    for (int i = 0; i < 200; ++i) {
      try {
        connect().command({"PING"});
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(50ms);
      }
    }
    throw std::runtime_error("redis-server did not start: " + read_text(dir_ / "redis.log"));
  }
  void stop() {
    process_->kill(SIGTERM);
    process_->wait(30s);
  }
  RedisConnection connect() const { return RedisConnection::open(cluster::parse_redis_address(url()), {}); }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  fs::path dir_;
  int port_;
  std::unique_ptr<BackgroundProcess> process_;
};

struct Inputs {
  fs::path audio, long_audio, video;
  std::string box;
};

class Cluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = std::make_unique<test::TempDir>();
    const auto meta = test::manifest("e2e")["meta"];
    const auto grid = test::shared_root() / "media" / "grid";
    const auto video_clip = grid / (meta["video_clip"].get<std::string>() + ".mpg");
    const auto audio_clip = grid / (meta["audio_clips"][0].get<std::string>() + ".mpg");
    const auto media = shared_->path() / "media";
    fs::create_directories(media);
    inputs_.audio = media / "speech.wav";
    inputs_.long_audio = media / "long.wav";
    inputs_.video = media / "face.mp4";
    media::test::run_ffmpeg("-i " + audio_clip.string() + " -t 1 -vn -ac 1 -ar 16000 " + inputs_.audio.string());
    media::test::run_ffmpeg("-i " + audio_clip.string() + " -t 3 -vn -ac 1 -ar 16000 " + inputs_.long_audio.string());
    media::test::run_ffmpeg("-i " + video_clip.string() + " -t 1 -an -c:v libx264 -preset ultrafast -crf 10 " +
                            inputs_.video.string());
    const auto box = meta["box_top_bottom_left_right"];
    inputs_.box = std::to_string(box[0].get<int>()) + "," + std::to_string(box[1].get<int>()) + "," +
                  std::to_string(box[2].get<int>()) + "," + std::to_string(box[3].get<int>());
  }
  static void TearDownTestSuite() { shared_.reset(); }

  void SetUp() override {
    redis_ = std::make_unique<RedisServer>(dir_.path());
    out_ = shared_->path() / "media" / ("out-" + std::to_string(::getpid()) + "-" + dir_.path().filename().string());
    fs::create_directories(out_);
    fs::create_directories(dir_.path() / "scratch");
  }
  void TearDown() override {
    for (auto& [name, worker] : workers_)
      if (worker->running()) {
        worker->kill(SIGTERM);
        worker->wait(60s);
      }
    std::error_code ec;
    fs::remove_all(out_, ec);
  }

  fs::path media_root() const { return shared_->path() / "media"; }
  fs::path socket_of(const std::string& name) const { return dir_.path() / (name + ".sock"); }

  void start_worker(const std::string& name, const std::string& claim_idle = "2s") {
    const auto config = dir_.path() / (name + ".yaml");
    std::ofstream(config) << "socket:\n  path: " << socket_of(name).string() << "\n"
                          << "state_dir: " << (dir_.path() / ("state-" + name)).string() << "\n"
                          << "scheduler:\n  shutdown_timeout: 1s\n"
                          // Jobs give the fixed box: only the (hash-init) generator is loaded, which
                          // keeps three boxes' start on two cores short.
                          << "models:\n  directory: " << (test::shared_root() / "models").string() << "\n"
                          << "  default_detector: \"\"\n  entries:\n    - name: wav2lip\n      kind: wav2lip\n"
                          << "cluster:\n  address: " << redis_->url() << "\n  consumer: " << name
                          << "\n  claim_idle: " << claim_idle << "\n  max_attempts: 3\n  media_roots: ["
                          << media_root().string() << "]\n  max_inline_bytes: 1M\n";
    workers_[name] = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{HEYGEMD_BINARY, "--config", config.string(), "--log-level", "debug"},
        dir_.path() / (name + ".log"));
  }

  // Until every named worker beats as "serving" (its models are loaded and it reads the stream).
  // Three boxes warming their generator on two busy cores take minutes.
  void wait_serving(const std::set<std::string>& names) {
    const auto until = std::chrono::steady_clock::now() + 900s;
    while (std::chrono::steady_clock::now() < until) {
      const auto result = ctl({"--json", "workers"});
      if (result.exit_code == 0) {
        std::set<std::string> serving;
        const auto listed = nlohmann::json::parse(result.out);
        for (const auto& worker : listed["workers"])
          if (worker.value("state", std::string()) == "serving") serving.insert(worker["consumer"].get<std::string>());
        if (std::includes(serving.begin(), serving.end(), names.begin(), names.end())) return;
      }
      for (const auto& name : names) ASSERT_TRUE(workers_.at(name)->running()) << logs();
      std::this_thread::sleep_for(250ms);
    }
    FAIL() << "workers not serving\n" << logs();
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {HEYGEMCTL_BINARY, "--cluster", redis_->url()});
    return run_process(args, dir_.path() / "scratch");
  }

  std::string submit(const fs::path& audio, const fs::path& output, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"submit", "--detach", "-a", audio.string(), inputs_.video.string(), "-o",
                                  output.string(), "--box", inputs_.box, "--crf", "35", "--preset", "ultrafast"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = ctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::smatch match;
    const auto text = result.out;
    EXPECT_TRUE(std::regex_search(text, match, std::regex("[0-9a-f]{12}"))) << result.out << result.err;
    return match.str();
  }

  cluster::Fields job_hash(const std::string& job) {
    auto redis = redis_->connect();
    return cluster::field_pairs(redis.command({"HGETALL", "heygem:jobs:job:" + job}));
  }
  std::string job_field(const std::string& job, const std::string& name) { return cluster::field(job_hash(job), name); }

  void wait_for_field(const std::string& job, const std::string& name, const std::string& value, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (job_field(job, name) == value) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "job " << job << ": " << name << " never became " << value << "\n" << logs();
  }

  // The events of a job, by name.
  std::multiset<std::string> events_of(const std::string& job) {
    auto redis = redis_->connect();
    std::multiset<std::string> names;
    for (const auto& entry : redis.command({"XRANGE", "heygem:jobs:job:" + job + ":events", "-", "+"}).elements) {
      const auto event = nlohmann::json::parse(cluster::field(cluster::field_pairs(entry.elements[1]), "event"));
      names.insert(event["event"].get<std::string>());
    }
    return names;
  }

  void expect_valid_output(const fs::path& output) {
    ASSERT_TRUE(fs::exists(output)) << output;
    const auto probed = media::test::probe_stream(output, "video");
    EXPECT_EQ(probed.codec, "h264") << output;
    EXPECT_GT(probed.frames, 0) << output;
  }

  // No temporary (.part) file is left in the outputs folder.
  void expect_no_partial_files() {
    for (const auto& entry : fs::directory_iterator(out_))
      EXPECT_EQ(entry.path().extension(), ".mp4") << "left behind: " << entry.path();
  }

  // docs/cluster.md's producer for web backends (scripts/cluster-producer.py, redis-py, without
  // heygemctl): its job runs on `worker`, and heygemctl lists and follows it like its own.
  void expect_python_producer_job_runs(const std::string& worker) {
    const auto python = std::string("/usr/bin/python3");
    const auto probe = run_process({python, "-c", "import redis"}, dir_.path() / "scratch");
    if (probe.exit_code != 0) {
      std::cout << "[   NOTE   ] the Python producer is not tried: redis-py is not installed (Debian: python3-redis)\n";
      return;
    }
    const auto output = out_ / "from-python.mp4";
    // The workers here have no face detector: the job gives the fixed box.
    const auto options = nlohmann::json{{"crf", 23}, {"preset", "ultrafast"}, {"box", nlohmann::json::parse("[" + inputs_.box + "]")}};
    const auto produced = run_process({python, std::string(HEYGEM_SOURCE_DIR) + "/scripts/cluster-producer.py", redis_->url(),
                                       inputs_.audio.string(), inputs_.video.string(), output.string(), options.dump()},
                                      dir_.path() / "scratch");
    ASSERT_EQ(produced.exit_code, 0) << produced.out << produced.err;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(produced.out, match, std::regex("^[0-9a-f]{12}\n$"))) << produced.out;
    const auto job = match.str().substr(0, 12);
    // Listed at once (the submit script indexes it), before a worker took it.
    EXPECT_NE(ctl({"--json", "list", "--all"}).out.find(job), std::string::npos);
    const auto waited = ctl({"wait", job});
    ASSERT_EQ(waited.exit_code, 0) << waited.out << waited.err << logs();
    expect_valid_output(output);
    EXPECT_EQ(job_field(job, "state"), "done");
    EXPECT_EQ(job_field(job, "worker"), worker);
    EXPECT_EQ(job_field(job, "attempts"), "1");
    EXPECT_EQ(events_of(job).count("done"), 1u);
    // The first event is the producer's: heygemctl reads it as its own submit's.
    auto redis = redis_->connect();
    const auto first = redis.command({"XRANGE", "heygem:jobs:job:" + job + ":events", "-", "+", "COUNT", "1"});
    ASSERT_EQ(first.elements.size(), 1u);
    const auto message = protocol::parse_response(cluster::field(cluster::field_pairs(first.elements[0].elements.at(1)), "event"));
    const auto* event = std::get_if<protocol::JobEvent>(&message);
    ASSERT_NE(event, nullptr);
    EXPECT_EQ(event->job_id, job);
    EXPECT_TRUE(std::holds_alternative<protocol::QueuedEvent>(event->body));
    const auto status = nlohmann::json::parse(ctl({"--json", "status", job}).out);
    EXPECT_EQ(status["options"]["crf"], 23) << status.dump();
  }

  std::string logs() {
    std::string text;
    for (const auto& [name, worker] : workers_) {
      const auto log = read_text(dir_.path() / (name + ".log"));
      text += "---- " + name + " (last 6000 bytes)\n" + log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
    }
    return text;
  }

  static std::unique_ptr<test::TempDir> shared_;  // the "shared storage" every box mounts
  static Inputs inputs_;
  test::TempDir dir_;
  fs::path out_;
  std::unique_ptr<RedisServer> redis_;
  std::map<std::string, std::unique_ptr<BackgroundProcess>> workers_;
};

std::unique_ptr<test::TempDir> Cluster::shared_;
Inputs Cluster::inputs_;

// The soak-like cases (many jobs, a Redis restart under load) run in test_cluster_long (label long);
// the rest in test_cluster. One source, so both share the harness.
#if HEYGEM_CLUSTER_LONG
TEST_F(Cluster, ThreeWorkersTwentyJobsFromTwoClientsEachDoneExactlyOnce) {
  for (const auto* name : {"w1", "w2", "w3"}) start_worker(name);
  wait_serving({"w1", "w2", "w3"});
  std::vector<std::future<std::vector<std::pair<std::string, fs::path>>>> clients;
  for (int client = 0; client < 2; ++client)
    clients.push_back(std::async(std::launch::async, [this, client] {
      std::vector<std::pair<std::string, fs::path>> jobs;
      for (int i = 0; i < 10; ++i) {
        const auto output = out_ / ("c" + std::to_string(client) + "-" + std::to_string(i) + ".mp4");
        jobs.emplace_back(submit(inputs_.audio, output), output);
      }
      return jobs;
    }));
  std::vector<std::pair<std::string, fs::path>> jobs;
  for (auto& client : clients)
    for (auto& job : client.get()) jobs.push_back(job);
  ASSERT_EQ(jobs.size(), 20u);
  std::map<std::string, int> per_worker;
  for (const auto& [job, output] : jobs) {
    const auto waited = ctl({"wait", job});
    ASSERT_EQ(waited.exit_code, 0) << job << ": " << waited.out << waited.err << logs();
    expect_valid_output(output);
    EXPECT_EQ(job_field(job, "state"), "done");
    EXPECT_EQ(job_field(job, "attempts"), "1") << job;
    EXPECT_EQ(events_of(job).count("done"), 1u) << job;
    ++per_worker[job_field(job, "worker")];
  }
  EXPECT_EQ(per_worker.size(), 3u) << "every worker takes some jobs";
  for (const auto& [worker, count] : per_worker) EXPECT_GT(count, 0) << worker;
  expect_no_partial_files();
  // Nothing is left pending in the group; list shows them all done.
  auto redis = redis_->connect();
  EXPECT_EQ(redis.command({"XPENDING", "heygem:jobs", "heygem"}).elements.at(0).as_integer(), 0);
  const auto listed = nlohmann::json::parse(ctl({"--json", "list", "--all"}).out);
  EXPECT_EQ(listed["jobs"].size(), 20u);
}

#else
TEST_F(Cluster, KillDashNineMidJobAnotherWorkerCompletesIt) {
  start_worker("w1");
  start_worker("w2");
  wait_serving({"w1", "w2"});
  const auto output = out_ / "killed.mp4";
  const auto job = submit(inputs_.long_audio, output);
  wait_for_field(job, "state", "running", 60s);
  const auto first = job_field(job, "worker");
  ASSERT_TRUE(first == "w1" || first == "w2") << first;
  std::this_thread::sleep_for(300ms);  // well into the render
  workers_.at(first)->kill(SIGKILL);
  workers_.at(first)->wait(30s);
  EXPECT_FALSE(fs::exists(output)) << "no partial output at the final path";
  const auto waited = ctl({"wait", job});
  ASSERT_EQ(waited.exit_code, 0) << waited.err << logs();
  EXPECT_NE(job_field(job, "worker"), first);
  EXPECT_EQ(job_field(job, "attempts"), "2");
  EXPECT_EQ(events_of(job).count("done"), 1u);
  expect_valid_output(output);
  expect_no_partial_files();
}

TEST_F(Cluster, CancelFromAnotherClientReachesTheRunningWorker) {
  start_worker("w1");
  wait_serving({"w1"});
  const auto output = out_ / "cancelled.mp4";
  const auto job = submit(inputs_.long_audio, output);
  wait_for_field(job, "state", "running", 60s);
  std::this_thread::sleep_for(200ms);
  const auto cancelled = ctl({"cancel", job});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  const auto asked = std::chrono::steady_clock::now();
  // The worker stops the local job within its poll: its log says so well within a second.
  while (read_text(dir_.path() / "w1.log").find("job " + job + ": cancel requested") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now() - asked, 1s) << logs();
    std::this_thread::sleep_for(20ms);
  }
  const auto waited = ctl({"wait", job});
  EXPECT_EQ(waited.exit_code, 4) << waited.out << waited.err << logs();  // cancelled
  EXPECT_EQ(job_field(job, "state"), "cancelled");
  EXPECT_FALSE(fs::exists(output));
  expect_no_partial_files();
  // A queued job (no worker has it yet) is cancelled at once.
  workers_.at("w1")->kill(SIGTERM);
  workers_.at("w1")->wait(60s);
  const auto queued = submit(inputs_.audio, out_ / "never.mp4");
  EXPECT_EQ(ctl({"cancel", queued}).exit_code, 0);
  EXPECT_EQ(job_field(queued, "state"), "cancelled");
  EXPECT_EQ(ctl({"wait", queued}).exit_code, 4);
}

TEST_F(Cluster, HostileEntriesAreDeadLetteredWithAReasonAndTheWorkerKeepsServing) {
  start_worker("w1");
  wait_serving({"w1"});
  fs::create_symlink("/etc/hostname", media_root() / ("escape-" + dir_.path().filename().string() + ".wav"));
  const auto escape = (media_root() / ("escape-" + dir_.path().filename().string() + ".wav")).string();
  const auto spec = [&](const std::string& id, const nlohmann::json& audio, const nlohmann::json& options) {
    return nlohmann::json{{"version", 1},
                          {"job_id", id},
                          {"audio", audio},
                          {"videos", {{{"path", inputs_.video.string()}}}},
                          {"outputs", {(out_ / (id + ".mp4")).string()}},
                          {"options", options}}
        .dump();
  };
  const nlohmann::json good_audio{{"path", inputs_.audio.string()}};
  // Options a worker here can run (it has no face detector): each entry below has one thing wrong.
  const nlohmann::json boxed{{"box", nlohmann::json::parse("[" + inputs_.box + "]")}};
  // entry fields, and the words its dead letter's reason must contain
  const std::vector<std::pair<std::vector<std::string>, std::string>> hostile{
      {{"spec", "\x01garbage{{"}, "not JSON"},
      {{"colour", "blue"}, "no \"spec\" field"},
      {{"spec", R"({"version":1,"job_id":"a00000000001"})"}, "spec.audio: missing"},
      {{"spec", spec("a00000000002", good_audio, {{"warp", 9}})}, "warp"},
      {{"spec", spec("a00000000003", {{"path", "/etc/passwd"}}, boxed)}, "outside cluster.media_roots"},
      {{"spec", spec("a00000000004", {{"path", media_root().string() + "/../../etc/passwd"}}, boxed)}, "\"..\""},
      {{"spec", spec("a00000000005", {{"path", escape}}, boxed)}, "leaves its media root"},
      {{"spec", spec("a00000000006", {{"inline", 10737418240ULL}, {"name", "huge.wav"}}, boxed)},
       "more than cluster.max_inline_bytes"},
      {{"spec", spec("a00000000007", good_audio, {{"generator", "no-such-model"}})}, "no-such-model"},
      // No box and no detector on this worker: it could never run.
      {{"spec", spec("a00000000008", good_audio, nlohmann::json::object())}, "models.default_detector"},
  };
  auto redis = redis_->connect();
  std::vector<std::string> entries;
  for (const auto& [fields, reason] : hostile) {
    std::vector<std::string> args{"XADD", "heygem:jobs", "*"};
    args.insert(args.end(), fields.begin(), fields.end());
    entries.push_back(redis.command(args).str());
  }
  // The worker keeps serving: a good job after them is done.
  const auto output = out_ / "good.mp4";
  const auto good = submit(inputs_.audio, output);
  const auto waited = ctl({"wait", good});
  ASSERT_EQ(waited.exit_code, 0) << waited.err << logs();
  expect_valid_output(output);
  // So is one from the documented Python producer: its entries are not hostile.
  expect_python_producer_job_runs("w1");
  std::map<std::string, std::string> reasons;
  for (const auto& entry : redis.command({"XRANGE", "heygem:dead", "-", "+"}).elements) {
    const auto fields = cluster::field_pairs(entry.elements[1]);
    reasons[cluster::field(fields, "entry")] = cluster::field(fields, "reason");
  }
  ASSERT_EQ(reasons.size(), hostile.size()) << logs();
  for (std::size_t i = 0; i < hostile.size(); ++i)
    EXPECT_NE(reasons[entries[i]].find(hostile[i].second), std::string::npos)
        << "entry " << i << ": reason \"" << reasons[entries[i]] << "\" lacks \"" << hostile[i].second << "\"";
  // A dead-lettered job with an id ends failed for its client, with the reason.
  const auto failed = ctl({"wait", "a00000000003"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.out.find("outside cluster.media_roots"), std::string::npos) << failed.out;
  EXPECT_EQ(redis.command({"XPENDING", "heygem:jobs", "heygem"}).elements.at(0).as_integer(), 0);
  EXPECT_TRUE(workers_.at("w1")->running());
  const auto summary = nlohmann::json::parse(ctl({"--json", "status"}).out);
  EXPECT_EQ(summary["dead_letters"], hostile.size());
}

TEST_F(Cluster, SigtermHandsRunningJobsBackAtOnce) {
  // claim_idle is long: only the hand-back can explain a quick takeover.
  start_worker("w1", "60s");
  wait_serving({"w1"});
  const auto output = out_ / "handed.mp4";
  const auto job = submit(inputs_.long_audio, output);
  wait_for_field(job, "state", "running", 60s);
  start_worker("w2", "60s");
  workers_.at("w1")->kill(SIGTERM);
  EXPECT_EQ(workers_.at("w1")->wait(60s), 0) << logs();
  EXPECT_EQ(job_field(job, "worker") == "w1" && job_field(job, "state") == "running", false) << "handed back";
  const auto waited = ctl({"wait", job});
  ASSERT_EQ(waited.exit_code, 0) << waited.err << logs();
  EXPECT_EQ(job_field(job, "worker"), "w2");
  EXPECT_EQ(job_field(job, "attempts"), "1") << "a hand-back is not a failed attempt";
  expect_valid_output(output);
  expect_no_partial_files();
}

#endif

#if HEYGEM_CLUSTER_LONG
TEST_F(Cluster, RedisRestartMidRunLosesNoJob) {
  start_worker("w1");
  start_worker("w2");
  wait_serving({"w1", "w2"});
  std::vector<std::pair<std::string, fs::path>> jobs;
  for (int i = 0; i < 6; ++i) {
    const auto output = out_ / ("r" + std::to_string(i) + ".mp4");
    jobs.emplace_back(submit(i < 2 ? inputs_.long_audio : inputs_.audio, output), output);
  }
  wait_for_field(jobs[0].first, "state", "running", 60s);
  redis_->stop();
  std::this_thread::sleep_for(1500ms);  // the workers finish renders meanwhile and wait for Redis
  redis_->start();
  for (const auto& [job, output] : jobs) {
    const auto waited = ctl({"wait", job});
    ASSERT_EQ(waited.exit_code, 0) << job << ": " << waited.err << logs();
    expect_valid_output(output);
    EXPECT_EQ(events_of(job).count("done"), 1u) << job;
  }
  expect_no_partial_files();
}
#endif

}  // namespace
}  // namespace heygem::integration
