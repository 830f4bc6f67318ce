#include "daemon/jobs/job.hpp"

#include <array>
#include <chrono>

#include "common/errors.hpp"

namespace heygem::jobs {
namespace {

constexpr std::array<const char*, 5> kJobStates{"queued", "running", "done", "failed", "cancelled"};
constexpr std::array<const char*, 5> kItemStates{"pending", "running", "done", "failed", "cancelled"};

[[noreturn]] void bad_record(const std::string& field, const std::string& why) {
  throw Error(ErrorCode::invalid_input, "job record field " + field + ": " + why);
}

template <typename T>
T field(const nlohmann::json& object, const std::string& name, const std::string& path) {
  const auto it = object.find(name);
  if (it == object.end()) bad_record(path + name, "missing");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    bad_record(path + name, "has the wrong type (" + it->dump() + ")");
  }
}

template <typename T>
T optional_field(const nlohmann::json& object, const std::string& name, const std::string& path, T fallback) {
  if (!object.contains(name)) return fallback;
  return field<T>(object, name, path);
}

nlohmann::json item_to_json(const ItemResult& item) {
  return {{"state", to_string(item.state)},
          {"video", item.video_name},
          {"output", item.output_name},
          {"error", item.error},
          {"frames", item.frames},
          {"frames_without_face", item.frames_without_face},
          {"wall_seconds", item.wall_seconds},
          {"fps", item.fps},
          {"output_fps", item.output_fps},
          {"avatar_cache", item.avatar_cache},
          {"detect_seconds", item.detect_seconds},
          {"frames_gated", item.frames_gated},
          {"output_bytes", item.output_bytes},
          {"delivered", item.delivered},
          {"in_spool", item.in_spool},
          {"device", item.device}};
}

ItemResult item_from_json(const nlohmann::json& record, const std::string& path) {
  if (!record.is_object()) bad_record(path, "expected an object");
  ItemResult item;
  item.state = item_state_from_string(field<std::string>(record, "state", path));
  item.video_name = field<std::string>(record, "video", path);
  item.output_name = optional_field<std::string>(record, "output", path, "");
  item.error = optional_field<std::string>(record, "error", path, "");
  item.frames = optional_field<std::int64_t>(record, "frames", path, 0);
  item.frames_without_face = optional_field<std::int64_t>(record, "frames_without_face", path, 0);
  item.wall_seconds = optional_field<double>(record, "wall_seconds", path, 0);
  item.fps = optional_field<double>(record, "fps", path, 0);
  item.output_fps = optional_field<double>(record, "output_fps", path, 0);
  item.avatar_cache = optional_field<std::string>(record, "avatar_cache", path, "");
  item.frames_gated = optional_field<std::int64_t>(record, "frames_gated", path, 0);
  item.detect_seconds = optional_field<double>(record, "detect_seconds", path, 0);
  item.output_bytes = optional_field<std::uint64_t>(record, "output_bytes", path, 0);
  item.delivered = optional_field<bool>(record, "delivered", path, false);
  item.in_spool = optional_field<bool>(record, "in_spool", path, false);
  item.device = optional_field<std::string>(record, "device", path, "");
  return item;
}

}  // namespace

std::string to_string(JobState state) { return kJobStates.at(static_cast<std::size_t>(state)); }
std::string to_string(ItemState state) { return kItemStates.at(static_cast<std::size_t>(state)); }

JobState job_state_from_string(const std::string& text) {
  for (std::size_t i = 0; i < kJobStates.size(); ++i)
    if (text == kJobStates[i]) return static_cast<JobState>(i);
  bad_record("state", "unknown job state \"" + text + "\"");
}

ItemState item_state_from_string(const std::string& text) {
  for (std::size_t i = 0; i < kItemStates.size(); ++i)
    if (text == kItemStates[i]) return static_cast<ItemState>(i);
  bad_record("items[].state", "unknown item state \"" + text + "\"");
}

bool is_finished(JobState state) {
  return state == JobState::done || state == JobState::failed || state == JobState::cancelled;
}

nlohmann::json to_json(const Job& job) {
  auto items = nlohmann::json::array();
  for (const auto& item : job.items) items.push_back(item_to_json(item));
  return {{"format", 1},
          {"id", job.id},
          {"sequence", job.sequence},
          {"owner", job.owner},
          {"state", to_string(job.state)},
          {"audio", job.audio_name},
          {"options", job.options},
          {"items", std::move(items)},
          {"error", job.error},
          {"model", job.model},
          {"submitted_at_ms", job.submitted_at_ms},
          {"started_at_ms", job.started_at_ms},
          {"finished_at_ms", job.finished_at_ms},
          {"attempts", job.attempts}};
}

Job job_from_json(const nlohmann::json& record) {
  if (!record.is_object()) bad_record("(record)", "expected a JSON object");
  if (field<int>(record, "format", "") != 1) bad_record("format", "unsupported record format");
  Job job;
  job.id = field<std::string>(record, "id", "");
  if (!is_valid_job_id(job.id)) bad_record("id", "not a job id: \"" + job.id + "\"");
  job.sequence = field<std::uint64_t>(record, "sequence", "");
  job.owner = field<uid_t>(record, "owner", "");
  job.state = job_state_from_string(field<std::string>(record, "state", ""));
  job.audio_name = field<std::string>(record, "audio", "");
  job.options = field<nlohmann::json>(record, "options", "");
  if (!job.options.is_object()) bad_record("options", "expected an object");
  const auto items = field<nlohmann::json>(record, "items", "");
  if (!items.is_array() || items.empty()) bad_record("items", "expected a non-empty array");
  for (std::size_t i = 0; i < items.size(); ++i)
    job.items.push_back(item_from_json(items[i], "items[" + std::to_string(i) + "]."));
  job.error = optional_field<std::string>(record, "error", "", "");
  job.model = optional_field<std::string>(record, "model", "", "");
  job.submitted_at_ms = optional_field<std::int64_t>(record, "submitted_at_ms", "", 0);
  job.started_at_ms = optional_field<std::int64_t>(record, "started_at_ms", "", 0);
  job.finished_at_ms = optional_field<std::int64_t>(record, "finished_at_ms", "", 0);
  job.attempts = optional_field<int>(record, "attempts", "", 0);
  return job;
}

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace heygem::jobs
