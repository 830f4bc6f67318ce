#include "cli/render/tables.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "cli/render/format.hpp"

namespace heygem::cli::render {
namespace {

using namespace heygem::protocol;

std::string local_time(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm parts{};
  localtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

std::string item_progress(const ItemStatus& item) {
  std::string text(to_string(item.state));
  if (item.state == ItemState::running) {
    if (!item.stage.empty()) text += " " + item.stage;
    if (item.frames_total > 0)
      text += " " + percent(item.frames_done, item.frames_total) + " (" + std::to_string(item.frames_done) + "/" +
              std::to_string(item.frames_total) + ")";
    if (item.fps > 0) text += " " + format_fixed(item.fps, 1) + " fps";
    if (item.eta_s > 0) text += " ETA " + format_duration(item.eta_s);
    if (!item.device.empty()) text += " on " + item.device;
  } else if (item.state == ItemState::done) {
    text += " " + std::to_string(item.frames_total > 0 ? item.frames_total : item.frames_done) + " frames";
    if (item.wall_s > 0) text += " in " + format_fixed(item.wall_s, 1) + " s";
    if (item.frames_without_face > 0) text += ", " + std::to_string(item.frames_without_face) + " without a face";
    if (item.frames_gated > 0) text += ", " + std::to_string(item.frames_gated) + " silent (source kept)";
    if (item.avatar_cache == "hit") text += ", faces from the avatar cache";
    if (item.avatar_cache == "partial") text += ", faces partly from the avatar cache";
    if (!item.device.empty()) text += " (" + item.device + ")";
  } else if (item.state == ItemState::failed && !item.error.empty()) {
    text += ": " + item.error;
  }
  return text;
}

std::string item_output(const ItemStatus& item) {
  if (item.delivered) return (item.output_name.empty() ? "written" : item.output_name) + " (" + format_bytes(item.output_bytes) + ")";
  if (item.in_spool) return "in spool (" + format_bytes(item.output_bytes) + ")";
  return item.output_name.empty() ? "-" : item.output_name;
}

std::string job_progress(const JobStatus& job) {
  std::size_t done = 0;
  for (const auto& item : job.items) done += item.state == ItemState::done;
  std::string text = std::to_string(done) + "/" + std::to_string(job.items.size());
  for (const auto& item : job.items)
    if (item.state == ItemState::running && item.frames_total > 0) text += " " + percent(item.frames_done, item.frames_total);
  return text;
}

std::string state_text(const JobStatus& job) {
  std::string text(to_string(job.state));
  if (job.state == JobState::queued && job.position > 0) text += " #" + std::to_string(job.position);
  return text;
}

}  // namespace

std::string job_details(const JobStatus& job) {
  std::string out = "job " + job.job_id + "  " + state_text(job) + "\n";
  out += format_table({{"  owner uid", std::to_string(job.uid)},
                       {"  audio", job.audio_name},
                       {"  model", job.model.empty() ? "-" : job.model},
                       {"  submitted", local_time(job.submitted_at_ms)},
                       {"  started", local_time(job.started_at_ms)},
                       {"  finished", local_time(job.finished_at_ms)},
                       {"  attempts", std::to_string(job.attempts)}});
  if (!job.error.empty()) out += "  error      " + printable(job.error) + "\n";
  std::vector<std::vector<std::string>> rows{{"  #", "VIDEO", "STATE", "OUTPUT"}};
  for (std::size_t i = 0; i < job.items.size(); ++i)
    rows.push_back({"  " + std::to_string(i + 1), job.items[i].name, item_progress(job.items[i]), item_output(job.items[i])});
  return out + format_table(rows);
}

std::string job_table(const ListResponse& list) {
  if (list.jobs.empty()) return "no jobs\n";
  std::vector<std::vector<std::string>> rows{{"JOB", "STATE", "ITEMS", "SUBMITTED", "UID", "AUDIO"}};
  for (const auto& job : list.jobs)
    rows.push_back({job.job_id, state_text(job), job_progress(job), local_time(job.submitted_at_ms), std::to_string(job.uid),
                    job.audio_name});
  return format_table(rows);
}

std::string model_table(const ModelsResponse& models) {
  if (models.rows.empty()) return "no models configured\n";
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<std::vector<std::string>> rows{
      {"NAME", "KIND", "DEVICE", "PRECISION", "STATE", "SIZE", "LEASES", "HEARTBEAT", "KEEP_ALIVE", "UNTIL"}};
  std::string warnings;
  for (const auto& row : models.rows) {
    std::string heartbeat = "-";
    if (row.heartbeat_at_ms) {
      heartbeat = format_duration(static_cast<double>(std::max<std::int64_t>(0, now_ms - *row.heartbeat_at_ms)) / 1000.0) + " ago";
      if (row.heartbeat_ms >= 0) heartbeat += ", " + format_fixed(row.heartbeat_ms, 1) + " ms";
    }
    const std::string keep_alive = row.keep_alive_s ? format_duration(*row.keep_alive_s) : "forever";
    std::string until = "-";
    if (row.state == "warm" || row.state == "busy")
      until = !row.expires_in_s ? "forever" : format_duration(*row.expires_in_s) + " from now";
    rows.push_back({row.untrained ? row.name + " (UNTRAINED)" : row.name, row.kind, row.device,
                    row.precision.empty() ? "-" : row.precision, row.state,
                    row.resident_bytes ? format_bytes(row.resident_bytes) : "-", std::to_string(row.leases), heartbeat,
                    keep_alive, until});
    // One warning per model, not per replica.
    if (row.untrained && warnings.find("WARNING: " + row.name + " runs untrained") == std::string::npos)
      warnings += "WARNING: " + row.name + " runs untrained hash-init weights: its output is NOT a real lip-sync "
                  "(name wav2lip.pth or wav2lip_gan.pth in the config's models.entries)\n";
  }
  std::string out = format_table(rows);
  for (const auto& device : models.devices) {
    out += "device " + device.device + ": models " + format_bytes(device.models_bytes);
    if (device.allocated_bytes) out += ", allocator " + format_bytes(*device.allocated_bytes) + " allocated";
    if (device.reserved_bytes) out += " / " + format_bytes(*device.reserved_bytes) + " reserved (cache included)";
    out += "\n";
  }
  if (models.daemon_rss_bytes) out += "heygemd resident memory (RSS): " + format_bytes(models.daemon_rss_bytes) + "\n";
  return out + warnings;
}

}  // namespace heygem::cli::render
