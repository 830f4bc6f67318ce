// The progress views, fed one synthetic job: 2 items, with repeated progress inside each stage.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/render/progress.hpp"
#include "cli/render/tables.hpp"

namespace heygem::cli::render {
namespace {

using namespace heygem::protocol;

const std::string kJob = "00112233aabb";

struct Script {
  SubmittedResponse submitted{kJob, 2};
  JobStatus snapshot;
  std::vector<JobEvent> events;
};

Script two_item_job(EventBody ending) {
  Script s;
  s.snapshot.job_id = kJob;
  s.snapshot.state = JobState::queued;
  s.snapshot.position = 2;
  s.snapshot.audio_name = "speech.wav";
  for (const char* name : {"alice.mp4", "bob.mp4"}) {
    ItemStatus item;
    item.name = name;
    s.snapshot.items.push_back(item);
  }
  auto add = [&](EventBody body) { s.events.push_back(JobEvent{kJob, std::move(body)}); };
  add(QueuedEvent{1});
  add(LoadingModelEvent{"wav2lip"});
  for (int item = 0; item < 2; ++item) {
    add(RunningEvent{item, 2, "audio", 0, 100, 0, 0});
    for (int done = 10; done <= 100; done += 30) add(RunningEvent{item, 2, "render", done, 100, 25.0, (100 - done) / 25.0});
    add(RunningEvent{item, 2, "finalize", 100, 100, 25.0, 0});
    add(ItemDoneEvent{item, OutputPlace::fd, 100, item, 4.0, 25.0});
  }
  add(std::move(ending));
  return s;
}

std::string render(Mode mode, const Script& script, std::vector<std::string> labels = {}) {
  std::ostringstream out;
  auto view = make_progress_view(mode, out, std::move(labels));
  view->submitted(script.submitted);
  view->snapshot(script.snapshot);
  for (const auto& event : script.events) view->event(event);
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Render, ModeChoice) {
  EXPECT_EQ(choose_mode(false, false, true), Mode::tty);
  EXPECT_EQ(choose_mode(false, false, false), Mode::lines);
  EXPECT_EQ(choose_mode(false, true, true), Mode::quiet);
  EXPECT_EQ(choose_mode(true, true, true), Mode::json);
}

TEST(Render, JsonIsOneProtocolMessagePerLine) {
  const Script script = two_item_job(DoneEvent{{OutputPlace::fd, OutputPlace::fd}, 200, 1, 8.0, 25.0});
  const auto lines = lines_of(render(Mode::json, script));
  ASSERT_EQ(lines.size(), 2 + script.events.size());
  EXPECT_EQ(type_of(parse_response(lines[0])), MessageType::submitted);
  EXPECT_EQ(type_of(parse_response(lines[1])), MessageType::job);
  for (std::size_t i = 0; i < script.events.size(); ++i) {
    const auto event = std::get<JobEvent>(parse_response(lines[i + 2]));
    EXPECT_EQ(event_name(event.body), event_name(script.events[i].body));
  }
}

TEST(Render, QuietPrintsNothing) {
  EXPECT_EQ(render(Mode::quiet, two_item_job(FailedEvent{"bob.mp4: no face"})), "");
}

TEST(Render, LinesChangeOnlyWithTheStage) {
  const Script script = two_item_job(DoneEvent{{OutputPlace::fd, OutputPlace::fd}, 200, 1, 8.0, 25.0});
  const auto lines = lines_of(render(Mode::lines, script, {"out/alice.lipsync.mp4", "out/bob.lipsync.mp4"}));
  // Expected: submitted, snapshot's queued line, one per distinct (item, stage) and per other event.
  std::set<std::pair<int, std::string>> stages;
  std::size_t other_events = 0;
  for (const auto& event : script.events) {
    if (const auto* running = std::get_if<RunningEvent>(&event.body)) stages.insert({running->item, running->stage});
    else ++other_events;
  }
  // (The snapshot said position 2 and the queued event says 1: both are shown.)
  EXPECT_EQ(lines.size(), 2 + stages.size() + other_events);
  for (const auto& line : lines) {
    EXPECT_EQ(line.rfind("job " + kJob + " ", 0), 0u) << line;   // every line names the job
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;     // no terminal control off a TTY
  }
  EXPECT_NE(lines.back().find("done: 2 outputs, 200 frames"), std::string::npos) << lines.back();
  bool saw_output = false;
  for (const auto& line : lines) saw_output |= line.find("-> out/bob.lipsync.mp4") != std::string::npos;
  EXPECT_TRUE(saw_output);
}

TEST(Render, LinesShowFpsAndEtaWithinAStageEveryInterval) {
  const Script script = two_item_job(DoneEvent{{OutputPlace::fd, OutputPlace::fd}, 200, 1, 8.0, 25.0});
  std::ostringstream out;
  auto view = make_progress_view(Mode::lines, out, {}, std::chrono::milliseconds(0));  // every event
  view->submitted(script.submitted);
  view->snapshot(script.snapshot);
  for (const auto& event : script.events) view->event(event);
  const std::string text = out.str();
  EXPECT_NE(text.find("item 1/2 alice.mp4: render 40/100 frames, 25.0 fps, ETA 0:02"), std::string::npos) << text;
  EXPECT_NE(text.find("item 2/2 bob.mp4: render 100/100 frames, 25.0 fps, ETA 0:00"), std::string::npos) << text;
  // The default interval (seconds) lets a quick run through without them.
  EXPECT_EQ(render(Mode::lines, script).find("fps, ETA"), std::string::npos);
}

// A job spread over devices runs its items at once: their events interleave, and each item still
// gets one line per stage, not one per switch between the items.
TEST(Render, LinesOfItemsRunningAtOnceShowEachStageOnce) {
  Script script;
  script.snapshot.job_id = kJob;
  script.snapshot.state = JobState::running;
  for (const char* name : {"alice.mp4", "bob.mp4"}) {
    ItemStatus item;
    item.name = name;
    script.snapshot.items.push_back(item);
  }
  for (int done = 10; done <= 100; done += 10)
    for (int item = 0; item < 2; ++item)
      script.events.push_back(JobEvent{kJob, RunningEvent{item, 2, "render", done, 100, 25.0, 1.0}});
  const auto lines = lines_of(render(Mode::lines, script));
  std::size_t stage_lines = 0;
  for (const auto& line : lines) stage_lines += line.find(": render (100 frames)") != std::string::npos;
  EXPECT_EQ(stage_lines, 2u) << render(Mode::lines, script);
}

TEST(Render, LinesReportFailureAndSpool) {
  Script script = two_item_job(FailedEvent{"bob.mp4: no face in frame 3 (--strict)"});
  script.events[script.events.size() - 2].body = ItemDoneEvent{1, OutputPlace::spool, 100, 0, 4.0, 25.0};
  const auto lines = lines_of(render(Mode::lines, script));
  EXPECT_NE(lines.back().find("failed: bob.mp4: no face in frame 3"), std::string::npos);
  EXPECT_NE(lines[lines.size() - 2].find("heygemctl fetch " + kJob), std::string::npos) << lines[lines.size() - 2];
}

TEST(Render, TtyRedrawsBarsInPlace) {
  const Script script = two_item_job(CancelledEvent{});
  const std::string text = render(Mode::tty, script);
  EXPECT_NE(text.find("\x1b[1A\r\x1b[2K"), std::string::npos);  // moves up and clears to redraw
  EXPECT_NE(text.find("alice.mp4  render  [="), std::string::npos);
  EXPECT_NE(text.find("40%"), std::string::npos);   // 40 of 100 frames
  EXPECT_NE(text.find("25.0 fps"), std::string::npos);
  EXPECT_NE(text.find("ETA 0:02"), std::string::npos);  // 60 frames left at 25 fps
  EXPECT_NE(text.find("loading model wav2lip"), std::string::npos);
  // After the last redraw is erased, the final line stands alone.
  const auto last_erase = text.rfind("\x1b[2K");
  EXPECT_EQ(text.substr(last_erase + 4), "job " + kJob + " cancelled\n");
}

TEST(Tables, JobDetailsAndListShowItems) {
  JobStatus job = two_item_job(CancelledEvent{}).snapshot;
  job.state = JobState::running;
  job.items[0].state = ItemState::done;
  job.items[0].frames_total = 100;
  job.items[0].delivered = true;
  job.items[0].output_name = "alice.lipsync.mp4";
  job.items[0].output_bytes = 3 * 1024 * 1024;
  job.items[1].state = ItemState::running;
  job.items[1].stage = "render";
  job.items[1].frames_done = 25;
  job.items[1].frames_total = 100;
  job.items[0].device = "cuda:0";
  job.items[1].device = "cuda:1";  // one job's items on two GPUs
  const std::string details = job_details(job);
  EXPECT_NE(details.find("alice.lipsync.mp4 (3.0 MiB)"), std::string::npos) << details;
  EXPECT_NE(details.find("running render 25% (25/100) on cuda:1"), std::string::npos) << details;
  EXPECT_NE(details.find("done 100 frames (cuda:0)"), std::string::npos) << details;
  const std::string table = job_table(ListResponse{{job}});
  EXPECT_NE(table.find(kJob), std::string::npos);
  EXPECT_NE(table.find("1/2 25%"), std::string::npos) << table;
  EXPECT_EQ(job_table(ListResponse{}), "no jobs\n");
}

TEST(Tables, ModelsLikeOllamaPs) {
  ModelRow warm{"wav2lip", "wav2lip", "cuda:0", "float16", "warm", 150 * 1024 * 1024, 0, 2.0, 0.5, 3.25, 240.0, 1};
  warm.keep_alive_s = 300;
  warm.heartbeat_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count() - 42'000;
  ModelRow pinned = warm;
  pinned.name = "retinaface";
  pinned.expires_in_s.reset();
  pinned.keep_alive_s.reset();
  ModelRow lazy = warm;
  lazy.name = "s3fd";
  lazy.state = "unloaded";
  lazy.keep_alive_s = 10;
  lazy.heartbeat_at_ms.reset();
  lazy.expires_in_s.reset();
  lazy.resident_bytes = 0;
  ModelsResponse models{{warm, pinned, lazy}};
  models.devices.push_back({"cuda:0", 300 * 1024 * 1024, 1024ULL * 1024 * 1024, 3ULL * 1024 * 1024 * 1024});
  models.daemon_rss_bytes = 900 * 1024 * 1024;
  const auto lines = lines_of(model_table(models));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0].rfind("NAME", 0), 0u);
  EXPECT_NE(lines[0].find("KEEP_ALIVE"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("150.0 MiB"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("4:00 from now"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("5:00"), std::string::npos) << "the configured keep_alive: " << lines[1];
  EXPECT_NE(lines[1].find("ago, 3.2 ms"), std::string::npos) << "when the heartbeat ran: " << lines[1];
  EXPECT_NE(lines[2].find("forever"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3].find("forever"), std::string::npos) << "an unloaded model with keep_alive 10s: " << lines[3];
  EXPECT_NE(lines[4].find("device cuda:0: models 300.0 MiB"), std::string::npos) << lines[4];
  EXPECT_NE(lines[4].find("3.0 GiB reserved"), std::string::npos) << lines[4];
  EXPECT_NE(lines[5].find("900.0 MiB"), std::string::npos) << lines[5];

  ModelRow untrained = warm;
  untrained.untrained = true;
  const std::string table = model_table(ModelsResponse{{untrained}});
  EXPECT_NE(table.find("wav2lip (UNTRAINED)"), std::string::npos) << table;
  EXPECT_NE(table.find("WARNING: wav2lip runs untrained hash-init weights"), std::string::npos) << table;

  // Two replicas: a row each with its device, one warning for the model.
  ModelRow second_replica = untrained;
  second_replica.device = "cpu:1";
  const std::string replicated = model_table(ModelsResponse{{untrained, second_replica}});
  const auto replicated_lines = lines_of(replicated);
  ASSERT_GE(replicated_lines.size(), 3u) << replicated;
  EXPECT_NE(replicated_lines[2].find("cpu:1"), std::string::npos) << replicated;
  const auto warning = replicated.find("WARNING: wav2lip");
  ASSERT_NE(warning, std::string::npos) << replicated;
  EXPECT_EQ(replicated.find("WARNING: wav2lip", warning + 1), std::string::npos) << "warned per replica:\n" << replicated;
}

}  // namespace
}  // namespace heygem::cli::render
