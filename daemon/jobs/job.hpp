#pragma once
// A job: one audio x N videos (items) submitted by one uid, with a result per item. This is the
// durable record (JSON in <state-dir>/jobs/<id>.json); runtime-only things (output fds, cancel
// flags, watchers) live in the scheduler.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/job_id.hpp"

namespace heygem::jobs {

enum class JobState { queued, running, done, failed, cancelled };
enum class ItemState { pending, running, done, failed, cancelled };

std::string to_string(JobState state);
std::string to_string(ItemState state);
JobState job_state_from_string(const std::string& text);  // throws heygem::Error(invalid_input)
ItemState item_state_from_string(const std::string& text);
bool is_finished(JobState state);

struct ItemResult {
  ItemState state = ItemState::pending;
  std::string video_name;     // the client's display name of the video (never opened)
  std::string output_name;    // the client's display name of its output, if it passed one
  std::string error;          // cause when failed
  std::int64_t frames = 0, frames_without_face = 0;
  double wall_seconds = 0, fps = 0;  // fps: processing speed
  double output_fps = 0;      // the output video's frame rate
  std::string avatar_cache;   // "hit", "partial", "miss", "off"; "" before the item ran
  double detect_seconds = 0;  // busy time of the face detection (0 on an avatar cache hit)
  std::int64_t frames_gated = 0;  // silent frames the silence gate left as the source
  std::uint64_t output_bytes = 0;
  bool delivered = false;     // written into the client's output fd
  bool in_spool = false;      // the MP4 waits in the spool for fetch
  std::string device;         // the device that ran it ("" before it started)
};

struct Job {
  std::string id;
  std::uint64_t sequence = 0;  // FIFO order, survives restarts
  uid_t owner = 0;
  JobState state = JobState::queued;
  std::string audio_name;
  nlohmann::json options = nlohmann::json::object();  // validated item options, as submitted
  std::vector<ItemResult> items;
  std::string error;           // cause when failed
  std::string model;           // generator that ran it (for the log and status)
  std::int64_t submitted_at_ms = 0, started_at_ms = 0, finished_at_ms = 0;  // unix ms; 0 = not yet
  int attempts = 0;            // runs started (a restart during a run requeues it)
};

nlohmann::json to_json(const Job& job);
// Throws heygem::Error(invalid_input) naming the field when the record is not a valid job.
Job job_from_json(const nlohmann::json& record);

std::int64_t now_unix_ms();

}  // namespace heygem::jobs
