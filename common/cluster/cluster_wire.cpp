#include "common/cluster/cluster_wire.hpp"

#include <charconv>
#include <set>

#include "common/errors.hpp"
#include "common/job_id.hpp"

namespace heygem::cluster {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, "spec." + field + ": " + why);
}

void only_keys(const nlohmann::json& object, const std::string& field, const std::set<std::string>& allowed) {
  if (!object.is_object()) fail(field, "expected an object");
  for (const auto& [key, value] : object.items())
    if (!allowed.count(key)) fail(field.empty() ? key : field + "." + key, "unknown key");
}

// An absolute path without "." or ".." components, NUL or control characters: where it lies (under
// which media root) is the worker's check.
std::string checked_path(const nlohmann::json& value, const std::string& field) {
  if (!value.is_string()) fail(field, "expected a string (an absolute path)");
  const auto path = value.get<std::string>();
  if (path.empty() || path.front() != '/') fail(field, "expected an absolute path, got \"" + path + "\"");
  if (path.size() > kMaxPathBytes) fail(field, "longer than " + std::to_string(kMaxPathBytes) + " bytes");
  if (protocol::first_control_character(path) || path.find('\0') != std::string::npos)
    fail(field, "contains a control character");
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    const auto part = std::string_view(path).substr(start, end - start);
    if (part == "..") fail(field, "\"..\" is not allowed in a path: " + path);
    if (part == ".") fail(field, "\".\" is not allowed in a path: " + path);
    start = end + 1;
  }
  if (path.back() == '/') fail(field, "names a folder, not a file: " + path);
  return path;
}

std::string basename_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

MediaRef media_ref(const nlohmann::json& value, const std::string& field) {
  only_keys(value, field, {"path", "inline", "name"});
  MediaRef ref;
  const bool has_path = value.contains("path"), has_inline = value.contains("inline");
  if (has_path == has_inline) fail(field, "expected exactly one of path and inline");
  if (has_path) {
    ref.path = checked_path(value["path"], field + ".path");
    ref.name = basename_of(ref.path);
    if (value.contains("name")) fail(field + ".name", "only with inline (a path's name is its basename)");
  } else {
    const auto& bytes = value["inline"];
    if (!bytes.is_number_unsigned() || bytes.get<std::uint64_t>() == 0)
      fail(field + ".inline", "expected the inline input's size in bytes (an integer > 0)");
    ref.inline_bytes = bytes.get<std::uint64_t>();
    if (!value.contains("name") || !value["name"].is_string()) fail(field + ".name", "expected a display name");
    ref.name = value["name"].get<std::string>();
  }
  try {
    protocol::validate_display_name(ref.name, "spec." + field + ".name");
  } catch (const Error& e) {
    throw Error(ErrorCode::invalid_argument, e.what());
  }
  return ref;
}

nlohmann::json to_json(const MediaRef& ref) {
  if (ref.inline_bytes) return {{"inline", *ref.inline_bytes}, {"name", ref.name}};
  return {{"path", ref.path}};
}

}  // namespace

nlohmann::json to_json(const ClusterJobSpec& spec) {
  nlohmann::json videos = nlohmann::json::array();
  for (const auto& video : spec.videos) videos.push_back(to_json(video));
  return {{"version", kWireVersion}, {"job_id", spec.job_id},    {"audio", to_json(spec.audio)},
          {"videos", videos},        {"outputs", spec.outputs}, {"options", protocol::to_json(spec.options)}};
}

ClusterJobSpec parse_job_spec(std::string_view text) {
  if (text.size() > kMaxSpecBytes)
    throw Error(ErrorCode::invalid_argument, "spec: " + std::to_string(text.size()) + " bytes, more than the " +
                                                 std::to_string(kMaxSpecBytes) + " a spec may have");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::invalid_argument, std::string("spec: not JSON: ") + e.what());
  }
  if (!json.is_object()) throw Error(ErrorCode::invalid_argument, "spec: expected a JSON object");
  only_keys(json, "", {"version", "job_id", "audio", "videos", "outputs", "options"});
  for (const char* required : {"version", "job_id", "audio", "videos", "outputs"})
    if (!json.contains(required)) fail(required, "missing");
  if (!json["version"].is_number_integer() || json["version"].get<long long>() != kWireVersion)
    fail("version", "expected " + std::to_string(kWireVersion) + ", got " + json["version"].dump());
  ClusterJobSpec spec;
  if (!json["job_id"].is_string() || !is_valid_job_id(json["job_id"].get<std::string>()))
    fail("job_id", "expected 12 lowercase hex digits, got " + json["job_id"].dump().substr(0, 64));
  spec.job_id = json["job_id"].get<std::string>();
  spec.audio = media_ref(json["audio"], "audio");
  const auto& videos = json["videos"];
  if (!videos.is_array() || videos.empty() || videos.size() > protocol::kMaxItems)
    fail("videos", "expected a list of 1 to " + std::to_string(protocol::kMaxItems) + " videos");
  for (std::size_t i = 0; i < videos.size(); ++i)
    spec.videos.push_back(media_ref(videos[i], "videos[" + std::to_string(i) + "]"));
  const auto& outputs = json["outputs"];
  if (!outputs.is_array() || outputs.size() != videos.size())
    fail("outputs", "expected one output path per video (" + std::to_string(videos.size()) + ")");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    auto path = checked_path(outputs[i], "outputs[" + std::to_string(i) + "]");
    if (!seen.insert(path).second) fail("outputs[" + std::to_string(i) + "]", "named twice: " + path);
    spec.outputs.push_back(std::move(path));
  }
  if (json.contains("options")) {
    try {
      spec.options = protocol::submit_options_from_json(json["options"]);
    } catch (const Error& e) {
      throw Error(ErrorCode::invalid_argument, std::string("spec.options: ") + e.what());
    }
  }
  return spec;
}

void check_inline_sizes(const ClusterJobSpec& spec, std::uint64_t max_inline_bytes) {
  const auto check = [&](const MediaRef& ref) {
    if (ref.inline_bytes && *ref.inline_bytes > max_inline_bytes)
      throw Error(ErrorCode::invalid_argument, "inline input " + ref.name + " claims " +
                                                   std::to_string(*ref.inline_bytes) +
                                                   " bytes, more than cluster.max_inline_bytes (" +
                                                   std::to_string(max_inline_bytes) + ")");
  };
  check(spec.audio);
  for (const auto& video : spec.videos) check(video);
}

std::optional<HashState> hash_state_from_string(std::string_view text) {
  if (text == "queued") return HashState::queued;
  if (text == "running") return HashState::running;
  if (text == "finishing") return HashState::finishing;
  if (text == "done") return HashState::done;
  if (text == "failed") return HashState::failed;
  if (text == "cancelled") return HashState::cancelled;
  return std::nullopt;
}

std::string field(const Fields& fields, std::string_view name) {
  for (const auto& [key, value] : fields)
    if (key == name) return value;
  return "";
}

namespace {

std::int64_t number(const Fields& fields, std::string_view name) {
  const auto text = field(fields, name);
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

protocol::JobState to_job_state(HashState state) {
  switch (state) {
    case HashState::queued: return protocol::JobState::queued;
    case HashState::running:
    case HashState::finishing: return protocol::JobState::running;
    case HashState::done: return protocol::JobState::done;
    case HashState::failed: return protocol::JobState::failed;
    case HashState::cancelled: return protocol::JobState::cancelled;
  }
  return protocol::JobState::failed;
}

}  // namespace

protocol::JobStatus job_status_from_hash(const std::string& job_id, const Fields& fields) {
  protocol::JobStatus status;
  bool from_worker = false;
  if (const auto stored = field(fields, "status"); !stored.empty()) {
    try {
      status = protocol::job_status_from_json(nlohmann::json::parse(stored));
      from_worker = true;
    } catch (const std::exception&) {
    }
  }
  if (!from_worker) {
    try {
      const auto spec = parse_job_spec(field(fields, "spec"));
      status.audio_name = spec.audio.name;
      status.options = spec.options;
      for (std::size_t i = 0; i < spec.videos.size(); ++i) {
        protocol::ItemStatus item;
        item.name = spec.videos[i].name;
        item.output_name = spec.outputs[i].substr(spec.outputs[i].rfind('/') + 1);
        status.items.push_back(item);
      }
    } catch (const std::exception&) {
      status.audio_name = "?";  // a spec this version cannot read (the job is dead-lettered)
    }
  }
  status.job_id = job_id;
  const auto state = hash_state_from_string(field(fields, "state")).value_or(HashState::queued);
  status.state = to_job_state(state);
  status.position = 0;
  status.attempts = static_cast<int>(number(fields, "attempts"));
  status.error = field(fields, "error");
  status.submitted_at_ms = number(fields, "submitted_at_ms");
  status.started_at_ms = number(fields, "started_at_ms");
  status.finished_at_ms = protocol::is_finished(status.state) ? number(fields, "finished_at_ms") : 0;
  return status;
}

std::string encode_event(const std::string& job_id, protocol::EventBody body) {
  return protocol::encode(protocol::Response{protocol::JobEvent{job_id, std::move(body)}});
}

// KEYS: hash, stream, index, events. ARGV: job id, spec, now (ms), queued event, events MAXLEN.
const char* const kSubmitScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('job ' .. ARGV[1] .. ' exists already') end
local entry = redis.call('XADD', KEYS[2], '*', 'spec', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'queued', 'spec', ARGV[2], 'submitted_at_ms', ARGV[3], 'attempts', 0, 'entry', entry)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
return entry
)lua";

// KEYS: hash, events. ARGV: run token, worker, now, max attempts, events MAXLEN, cancelled event,
// ttl (s), entry id, spec.
// Returns {verdict, detail}: run (detail: the attempt), finished (its state), cancelled,
// exhausted (attempts so far; detail 2: the last error), duplicate (the entry that owns the id).
const char* const kBeginScript = R"lua(
local owner = redis.call('HGET', KEYS[1], 'entry')
if owner and owner ~= ARGV[8] then return {'duplicate', owner} end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' or state == 'cancelled' then return {'finished', state} end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at_ms', ARGV[3], 'worker', '')
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  return {'cancelled', 'cancelled'}
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[4]) then
  return {'exhausted', tostring(attempts), redis.call('HGET', KEYS[1], 'error') or ''}
end
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'spec', ARGV[9])
redis.call('HSETNX', KEYS[1], 'submitted_at_ms', ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'run', ARGV[1], 'started_at_ms', ARGV[3], 'entry', ARGV[8])
redis.call('HDEL', KEYS[1], 'status')
return {'run', tostring(attempts)}
)lua";

// KEYS: hash. ARGV: run token. Before the outputs are renamed into place: ok, lost (another worker
// runs it now) or cancel.
const char* const kFenceScript = R"lua(
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 'lost' end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 'cancel' end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'finishing' then return 'ok' end
if state ~= 'running' then return 'lost' end
redis.call('HSET', KEYS[1], 'state', 'finishing')
return 'ok'
)lua";

// KEYS: hash, stream, events. ARGV: run token, group, entry id, final state, error, snapshot JSON,
// terminal event, now, events MAXLEN, ttl (s). Records the end once (a retry after a lost reply
// finds it recorded) and acknowledges the entry: ok or lost.
const char* const kFinishScript = R"lua(
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 'lost' end
if redis.call('HGET', KEYS[1], 'state') == ARGV[4] then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
  return 'ok'
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'error', ARGV[5], 'status', ARGV[6], 'finished_at_ms', ARGV[8])
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'event', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('EXPIRE', KEYS[3], ARGV[10])
return 'ok'
)lua";

// KEYS: hash, events, stream. ARGV: run token, error, "1" when the run does not count as an
// attempt (handed back on shutdown), queued event, events MAXLEN, group, consumer, entry id, idle
// (ms). Puts a running job back in the queue and makes its entry claimable by any worker at once:
// ok, lost (another worker runs it) or late (it is being finished).
const char* const kRequeueScript = R"lua(
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 'lost' end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 'late' end
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'run', '', 'error', ARGV[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
redis.call('XCLAIM', KEYS[3], ARGV[6], ARGV[7], 0, ARGV[8], 'IDLE', ARGV[9], 'JUSTID')
return 'ok'
)lua";

// KEYS: hash ("" when the entry names no valid job), stream, dead-letter stream, events. ARGV:
// group, entry id, reason, job id, the entry's spec (cut short), worker, now, failed event, events
// MAXLEN, ttl (s). The job's hash is marked only when it belongs to this entry.
const char* const kDeadLetterScript = R"lua(
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[2], 'job', ARGV[4], 'reason', ARGV[3], 'worker', ARGV[6], 'at_ms', ARGV[7], 'spec', ARGV[5])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if KEYS[1] ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'entry')
  local state = redis.call('HGET', KEYS[1], 'state')
  if (not owner or owner == ARGV[2]) and state ~= 'done' and state ~= 'cancelled' then
    redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[3], 'dead_letter', '1', 'finished_at_ms', ARGV[7], 'worker', '', 'run', '')
    redis.call('HSETNX', KEYS[1], 'spec', ARGV[5])
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', 'event', ARGV[8])
    redis.call('EXPIRE', KEYS[1], ARGV[10])
    redis.call('EXPIRE', KEYS[4], ARGV[10])
  end
end
return 'ok'
)lua";

// KEYS: hash, events. ARGV: now, cancelled event, events MAXLEN, ttl (s). Returns missing, the
// state of a finished job, cancelled (a queued job, at once) or the running state (the worker
// that runs it sees the flag within its poll interval).
const char* const kCancelScript = R"lua(
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'done' or state == 'failed' or state == 'cancelled' then return state end
redis.call('HSET', KEYS[1], 'cancel', '1')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at_ms', ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return 'cancelled'
end
return state
)lua";

// KEYS: stream. ARGV: group, consumer, entry ids... Resets the idle time of the entries this
// consumer still owns (never takes back one another worker claimed meanwhile); returns how many.
const char* const kKeepAliveScript = R"lua(
local kept = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #pending > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
)lua";

}  // namespace heygem::cluster
