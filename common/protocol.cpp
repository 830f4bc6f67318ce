#include "common/protocol.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

#include "common/job_id.hpp"

namespace heygem::protocol {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Name tables.
struct TypeInfo {
  MessageType type;
  std::string_view name;
  bool request;
  bool response;
};

constexpr std::array<TypeInfo, 20> kTypes{{
    {MessageType::hello, "hello", true, true},
    {MessageType::ping, "ping", true, false},
    {MessageType::pong, "pong", false, true},
    {MessageType::version, "version", true, true},
    {MessageType::submit, "submit", true, false},
    {MessageType::submitted, "submitted", false, true},
    {MessageType::status, "status", true, false},
    {MessageType::job, "job", false, true},
    {MessageType::list, "list", true, true},
    {MessageType::watch, "watch", true, false},
    {MessageType::wait, "wait", true, false},
    {MessageType::event, "event", false, true},
    {MessageType::cancel, "cancel", true, false},
    {MessageType::fetch, "fetch", true, false},
    {MessageType::fetched, "fetched", false, true},
    {MessageType::logs, "logs", true, true},
    {MessageType::models, "models", true, true},
    {MessageType::reload, "reload", true, false},
    {MessageType::reloaded, "reloaded", false, true},
    {MessageType::error, "error", false, true},
}};

const TypeInfo& info(MessageType type) {
  for (const auto& entry : kTypes)
    if (entry.type == type) return entry;
  throw Error(ErrorCode::internal, "message type without a name");
}

template <typename Enum, std::size_t N>
std::string_view enum_name(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

template <typename Enum, std::size_t N>
std::optional<Enum> enum_value(const std::array<std::pair<Enum, std::string_view>, N>& table,
                               std::string_view text) {
  for (const auto& [v, name] : table)
    if (name == text) return v;
  return std::nullopt;
}

template <typename Enum, std::size_t N>
std::string enum_choices(const std::array<std::pair<Enum, std::string_view>, N>& table) {
  std::string out;
  for (const auto& [v, name] : table) out += (out.empty() ? "" : "|") + std::string(name);
  return out;
}

constexpr std::array<std::pair<Blend, std::string_view>, 2> kBlends{{{Blend::feather, "feather"},
                                                                     {Blend::hard, "hard"}}};
constexpr std::array<std::pair<Loop, std::string_view>, 2> kLoops{{{Loop::pingpong, "pingpong"},
                                                                   {Loop::forward, "forward"}}};
constexpr std::array<std::pair<JobState, std::string_view>, 5> kJobStates{{{JobState::queued, "queued"},
                                                                          {JobState::running, "running"},
                                                                          {JobState::done, "done"},
                                                                          {JobState::failed, "failed"},
                                                                          {JobState::cancelled, "cancelled"}}};
constexpr std::array<std::pair<ItemState, std::string_view>, 5> kItemStates{
    {{ItemState::pending, "pending"},
     {ItemState::running, "running"},
     {ItemState::done, "done"},
     {ItemState::failed, "failed"},
     {ItemState::cancelled, "cancelled"}}};
constexpr std::array<std::pair<OutputPlace, std::string_view>, 2> kOutputPlaces{
    {{OutputPlace::fd, "fd"}, {OutputPlace::spool, "spool"}}};

// ---------------------------------------------------------------------------------------------
// Strict reading of JSON objects.
[[noreturn]] void malformed(const std::string& field, const std::string& why) {
  throw Error(ErrorCode::protocol, field + ": " + why);
}
[[noreturn]] void out_of_range(const std::string& field, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, field + ": " + why);
}

std::string describe(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// Reads one JSON object; every key must be read (or it is unknown and rejected by finish()).
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string context) : object_(object), context_(std::move(context)) {
    if (!object_.is_object()) malformed(context_, "expected an object, got " + describe(object_));
  }

  std::string field(std::string_view key) const { return context_ + "." + std::string(key); }

  const json* find(std::string_view key) {
    const auto it = object_.find(std::string(key));
    if (it == object_.end()) return nullptr;
    read_.insert(std::string(key));
    return &*it;
  }

  const json& require(std::string_view key) {
    const json* value = find(key);
    if (!value) malformed(field(key), "missing");
    return *value;
  }

  std::string string(std::string_view key) { return as_string(require(key), field(key)); }
  std::string string_or(std::string_view key, std::string fallback) {
    const json* v = find(key);
    return v ? as_string(*v, field(key)) : fallback;
  }
  std::optional<std::string> optional_string(std::string_view key) {
    const json* v = find(key);
    if (!v) return std::nullopt;
    return as_string(*v, field(key));
  }
  bool boolean_or(std::string_view key, bool fallback) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) malformed(field(key), "expected true or false, got " + describe(*v));
    return v->get<bool>();
  }
  std::int64_t integer(std::string_view key, std::int64_t low, std::int64_t high) {
    return as_integer(require(key), field(key), low, high);
  }
  std::int64_t integer_or(std::string_view key, std::int64_t low, std::int64_t high, std::int64_t fallback) {
    const json* v = find(key);
    return v ? as_integer(*v, field(key), low, high) : fallback;
  }
  std::uint64_t unsigned_or(std::string_view key, std::uint64_t fallback) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) malformed(field(key), "expected an integer, got " + describe(*v));
    if (v->is_number_unsigned()) return v->get<std::uint64_t>();
    const auto signed_value = v->get<std::int64_t>();
    if (signed_value < 0) out_of_range(field(key), "must not be negative");
    return static_cast<std::uint64_t>(signed_value);
  }
  double number_or(std::string_view key, double fallback) {
    const json* v = find(key);
    return v ? as_number(*v, field(key)) : fallback;
  }
  std::optional<double> optional_number(std::string_view key) {
    const json* v = find(key);
    if (!v) return std::nullopt;
    return as_number(*v, field(key));
  }
  const json& array(std::string_view key, std::size_t max_size) {
    const json& v = require(key);
    check_array(v, field(key), max_size);
    return v;
  }
  const json* optional_array(std::string_view key, std::size_t max_size) {
    const json* v = find(key);
    if (v) check_array(*v, field(key), max_size);
    return v;
  }

  template <typename Enum, std::size_t N>
  Enum enumeration(std::string_view key, const std::array<std::pair<Enum, std::string_view>, N>& table) {
    return as_enum(require(key), field(key), table);
  }

  // Rejects every key nobody read: path-like keys get a message that says why.
  void finish() const {
    for (const auto& [key, value] : object_.items()) {
      if (read_.count(key)) continue;
      if (is_path_like_key(key))
        malformed(field(key), "path-like fields are not accepted: the daemon never opens a path a client "
                              "names (pass a file descriptor)");
      malformed(field(key), "unknown key");
    }
  }

  static std::string as_string(const json& v, const std::string& field) {
    if (!v.is_string()) malformed(field, "expected a string, got " + describe(v));
    return v.get<std::string>();
  }
  static std::int64_t as_integer(const json& v, const std::string& field, std::int64_t low, std::int64_t high) {
    if (!v.is_number_integer()) malformed(field, "expected an integer, got " + describe(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(high))
      out_of_range(field, "must be between " + std::to_string(low) + " and " + std::to_string(high));
    const auto value = v.get<std::int64_t>();
    if (value < low || value > high)
      out_of_range(field, "must be between " + std::to_string(low) + " and " + std::to_string(high));
    return value;
  }
  static double as_number(const json& v, const std::string& field) {
    if (!v.is_number()) malformed(field, "expected a number, got " + describe(v));
    const double value = v.get<double>();
    if (!std::isfinite(value)) out_of_range(field, "must be finite");
    return value;
  }
  static void check_array(const json& v, const std::string& field, std::size_t max_size) {
    if (!v.is_array()) malformed(field, "expected an array, got " + describe(v));
    if (v.size() > max_size) out_of_range(field, "at most " + std::to_string(max_size) + " entries");
  }
  template <typename Enum, std::size_t N>
  static Enum as_enum(const json& v, const std::string& field,
                      const std::array<std::pair<Enum, std::string_view>, N>& table) {
    const std::string text = as_string(v, field);
    const auto value = enum_value(table, text);
    if (!value) out_of_range(field, "expected " + enum_choices(table) + ", got '" + text + "'");
    return *value;
  }

 private:
  const json& object_;
  std::string context_;
  std::set<std::string> read_;
};

constexpr std::int64_t kMaxCount = std::numeric_limits<std::int64_t>::max();

void validate_job_id(const std::string& id, const std::string& field) {
  if (!is_valid_job_id(id)) out_of_range(field, "not a job id (12 lowercase hex digits): '" + id.substr(0, 40) + "'");
}

std::string job_id_field(ObjectReader& reader) {
  std::string id = reader.string("job_id");
  validate_job_id(id, reader.field("job_id"));
  return id;
}

// Short free-text names (models, stages): printable ASCII without '/'.
std::string short_name(ObjectReader& reader, std::string_view key, bool allow_empty) {
  std::string value = reader.string(key);
  if (value.empty() && !allow_empty) out_of_range(reader.field(key), "must not be empty");
  if (value.size() > 64) out_of_range(reader.field(key), "at most 64 characters");
  for (const char c : value)
    if (c < 0x21 || c > 0x7e || c == '/')
      out_of_range(reader.field(key), "only printable characters without '/' and spaces");
  return value;
}

// ---------------------------------------------------------------------------------------------
// Submit options.
void validate_options(const SubmitOptions& options, const std::string& context) {
  // The range heygemctl offers; below it the encoder's time base degenerates (1e-300 failed at run time).
  if (options.fps && !(*options.fps >= 0.001 && *options.fps <= 240))
    out_of_range(context + ".fps", "must be in [0.001, 240] frames per second");
  if (options.crf && (*options.crf < 0 || *options.crf > 51)) out_of_range(context + ".crf", "must be between 0 and 51");
  if (options.crf && options.lossless) out_of_range(context + ".crf", "cannot be combined with lossless");
  if (options.box) {
    const auto& b = *options.box;
    const bool in_range = std::min({b.top, b.bottom, b.left, b.right}) >= 0 &&
                          std::max({b.top, b.bottom, b.left, b.right}) <= (1 << 16);
    if (!in_range || b.top >= b.bottom || b.left >= b.right)
      out_of_range(context + ".box", "expected [top, bottom, left, right] in pixels with top < bottom, left < right");
  }
  if (options.preset) {
    const auto& presets = x264_presets();
    if (std::find(presets.begin(), presets.end(), *options.preset) == presets.end())
      out_of_range(context + ".preset", "unknown x264 preset '" + *options.preset + "'");
  }
  for (const auto* name : {&options.generator, &options.detector}) {
    if (!*name) continue;
    const std::string& text = **name;
    const std::string field = context + (name == &options.generator ? ".generator" : ".detector");
    if (text.empty() || text.size() > 64) out_of_range(field, "expected a model name of 1..64 characters");
    for (const char c : text)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
        out_of_range(field, "model names use letters, digits, '_', '-' and '.' only");
  }
}

// Every key read_options reads (stored_submit_options leaves out the others).
constexpr std::array<std::string_view, 14> kOptionKeys{"blend",     "strict",   "loop",   "fps",          "box",
                                                        "nosmooth",  "generator", "detector", "crf",        "lossless",
                                                        "preset",    "avatar_cache", "silence_gate", "enhance"};

SubmitOptions read_options(const json& value, const std::string& context) {
  ObjectReader r(value, context);
  SubmitOptions o;
  if (r.find("blend")) o.blend = r.enumeration("blend", kBlends);
  o.strict = r.boolean_or("strict", false);
  if (r.find("loop")) o.loop = r.enumeration("loop", kLoops);
  o.fps = r.optional_number("fps");
  if (const json* box = r.optional_array("box", 4)) {
    if (box->size() != 4) out_of_range(r.field("box"), "expected [top, bottom, left, right]");
    std::array<int, 4> v{};
    for (std::size_t i = 0; i < 4; ++i)
      v[i] = static_cast<int>(ObjectReader::as_integer((*box)[i], r.field("box"), 0, 1 << 16));
    o.box = FaceBoxOption{v[0], v[1], v[2], v[3]};
  }
  o.nosmooth = r.boolean_or("nosmooth", false);
  o.generator = r.optional_string("generator");
  o.detector = r.optional_string("detector");
  if (r.find("crf")) o.crf = static_cast<int>(r.integer("crf", 0, 51));
  o.lossless = r.boolean_or("lossless", false);
  o.preset = r.optional_string("preset");
  o.avatar_cache = r.boolean_or("avatar_cache", true);
  o.silence_gate = r.boolean_or("silence_gate", true);
  if (r.find("enhance")) o.enhance = r.boolean_or("enhance", false);
  r.finish();
  validate_options(o, context);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Requests.
json names_json(const std::vector<std::string>& names) { return json(names); }

std::vector<std::string> read_names(ObjectReader& r, std::string_view key, std::size_t max_size) {
  const json* array = r.optional_array(key, max_size);
  std::vector<std::string> names;
  if (!array) return names;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string field = r.field(key) + "[" + std::to_string(i) + "]";
    names.push_back(ObjectReader::as_string((*array)[i], field));
    validate_display_name(names.back(), field);
  }
  return names;
}

struct RequestWriter {
  json operator()(const HelloRequest& m) const {
    return {{"type", "hello"}, {"version", m.version}, {"client", m.client}};
  }
  json operator()(const PingRequest&) const { return {{"type", "ping"}}; }
  json operator()(const VersionRequest&) const { return {{"type", "version"}}; }
  json operator()(const SubmitRequest& m) const {
    json j = {{"type", "submit"},         {"audio_name", m.audio_name}, {"item_names", names_json(m.item_names)},
              {"options", to_json(m.options)}, {"fds", m.fds}};
    if (!m.output_names.empty()) j["output_names"] = names_json(m.output_names);
    return j;
  }
  json operator()(const StatusRequest& m) const { return {{"type", "status"}, {"job_id", m.job_id}}; }
  json operator()(const ListRequest& m) const { return {{"type", "list"}, {"all", m.all}}; }
  json operator()(const WatchRequest& m) const { return {{"type", "watch"}, {"job_id", m.job_id}}; }
  json operator()(const WaitRequest& m) const { return {{"type", "wait"}, {"job_id", m.job_id}}; }
  json operator()(const CancelRequest& m) const { return {{"type", "cancel"}, {"job_id", m.job_id}}; }
  json operator()(const FetchRequest& m) const {
    return {{"type", "fetch"}, {"job_id", m.job_id}, {"items", m.items}, {"fds", m.fds}};
  }
  json operator()(const LogsRequest& m) const { return {{"type", "logs"}, {"job_id", m.job_id}}; }
  json operator()(const ModelsRequest& m) const {
    json j{{"type", "models"}};
    if (!m.action.empty()) j["action"] = m.action;
    if (!m.name.empty()) j["name"] = m.name;
    return j;
  }
  json operator()(const ReloadRequest&) const { return {{"type", "reload"}}; }
};

SubmitRequest read_submit(ObjectReader& r) {
  SubmitRequest m;
  m.audio_name = r.string("audio_name");
  validate_display_name(m.audio_name, r.field("audio_name"));
  r.array("item_names", kMaxItems);
  m.item_names = read_names(r, "item_names", kMaxItems);
  if (m.item_names.empty()) out_of_range(r.field("item_names"), "at least one video");
  m.output_names = read_names(r, "output_names", kMaxItems);
  if (!m.output_names.empty() && m.output_names.size() != m.item_names.size())
    out_of_range(r.field("output_names"), "one per item (" + std::to_string(m.item_names.size()) + ") or none");
  if (const json* options = r.find("options")) m.options = read_options(*options, r.field("options"));
  m.fds = static_cast<int>(r.integer("fds", 0, static_cast<std::int64_t>(kMaxFdsPerFrame)));
  if (m.fds != m.expected_fds())
    out_of_range(r.field("fds"), "declares " + std::to_string(m.fds) + " descriptors, the items need " +
                                     std::to_string(m.expected_fds()));
  return m;
}

FetchRequest read_fetch(ObjectReader& r) {
  FetchRequest m;
  m.job_id = job_id_field(r);
  const json& items = r.array("items", kMaxItems);
  std::set<std::int64_t> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string field = r.field("items") + "[" + std::to_string(i) + "]";
    const auto index = ObjectReader::as_integer(items[i], field, 0, static_cast<std::int64_t>(kMaxItems) - 1);
    if (!seen.insert(index).second) out_of_range(field, "item listed twice");
    m.items.push_back(static_cast<int>(index));
  }
  if (m.items.empty()) out_of_range(r.field("items"), "at least one item");
  m.fds = static_cast<int>(r.integer("fds", 0, static_cast<std::int64_t>(kMaxFdsPerFrame)));
  if (static_cast<std::size_t>(m.fds) != m.items.size())
    out_of_range(r.field("fds"), "declares " + std::to_string(m.fds) + " descriptors for " +
                                     std::to_string(m.items.size()) + " items");
  return m;
}

Request read_request(MessageType type, ObjectReader& r) {
  switch (type) {
    case MessageType::hello: {
      HelloRequest m;
      m.version = static_cast<int>(r.integer("version", 0, std::numeric_limits<int>::max()));
      m.client = r.string_or("client", "");
      if (m.client.size() > 256) out_of_range(r.field("client"), "at most 256 characters");
      if (const auto bad = first_control_character(m.client))
        out_of_range(r.field("client"), "control character " + *bad + " is not allowed");
      return m;
    }
    case MessageType::ping: return PingRequest{};
    case MessageType::version: return VersionRequest{};
    case MessageType::submit: return read_submit(r);
    case MessageType::status: return StatusRequest{job_id_field(r)};
    case MessageType::list: return ListRequest{r.boolean_or("all", false)};
    case MessageType::watch: return WatchRequest{job_id_field(r)};
    case MessageType::wait: return WaitRequest{job_id_field(r)};
    case MessageType::cancel: return CancelRequest{job_id_field(r)};
    case MessageType::fetch: return read_fetch(r);
    case MessageType::logs: return LogsRequest{job_id_field(r)};
    case MessageType::models: {
      ModelsRequest m;
      m.action = r.string_or("action", "");
      m.name = r.string_or("name", "");
      if (m.action != "" && m.action != "load" && m.action != "unload")
        out_of_range(r.field("action"), "expected load or unload, got '" + m.action.substr(0, 40) + "'");
      if (!m.action.empty() && m.name.empty()) malformed(r.field("name"), "a model name is required for " + m.action);
      if (m.name.size() > 256) out_of_range(r.field("name"), "longer than 256 bytes");
      return m;
    }
    case MessageType::reload: return ReloadRequest{};
    default: break;
  }
  malformed(r.field("type"), "'" + std::string(to_string(type)) + "' is not a request");
}

// ---------------------------------------------------------------------------------------------
// Responses.
json item_json(const ItemStatus& i) {
  return {{"name", i.name},
          {"output_name", i.output_name},
          {"state", to_string(i.state)},
          {"stage", i.stage},
          {"frames_done", i.frames_done},
          {"frames_total", i.frames_total},
          {"frames_without_face", i.frames_without_face},
          {"fps", i.fps},
          {"eta_s", i.eta_s},
          {"wall_s", i.wall_s},
          {"avatar_cache", i.avatar_cache},
          {"detect_s", i.detect_s},
          {"frames_gated", i.frames_gated},
          {"output_bytes", i.output_bytes},
          {"delivered", i.delivered},
          {"in_spool", i.in_spool},
          {"error", i.error},
          {"device", i.device}};
}

ItemStatus read_item(const json& value, const std::string& context) {
  ObjectReader r(value, context);
  ItemStatus i;
  i.name = r.string("name");
  i.output_name = r.string_or("output_name", "");
  i.state = r.enumeration("state", kItemStates);
  i.stage = r.string_or("stage", "");
  i.frames_done = r.integer_or("frames_done", 0, kMaxCount, 0);
  i.frames_total = r.integer_or("frames_total", 0, kMaxCount, 0);
  i.frames_without_face = r.integer_or("frames_without_face", 0, kMaxCount, 0);
  i.fps = r.number_or("fps", 0);
  i.eta_s = r.number_or("eta_s", 0);
  i.wall_s = r.number_or("wall_s", 0);
  i.avatar_cache = r.string_or("avatar_cache", "");
  i.detect_s = r.number_or("detect_s", 0);
  i.frames_gated = r.integer_or("frames_gated", 0, kMaxCount, 0);
  i.output_bytes = r.unsigned_or("output_bytes", 0);
  i.delivered = r.boolean_or("delivered", false);
  i.in_spool = r.boolean_or("in_spool", false);
  i.error = r.string_or("error", "");
  i.device = r.string_or("device", "");
  r.finish();
  return i;
}

JobStatus read_job(ObjectReader& r) {
  JobStatus j;
  j.job_id = job_id_field(r);
  j.uid = static_cast<std::uint32_t>(r.integer("uid", 0, std::numeric_limits<std::uint32_t>::max()));
  j.state = r.enumeration("state", kJobStates);
  j.position = static_cast<int>(r.integer_or("position", 0, std::numeric_limits<int>::max(), 0));
  j.audio_name = r.string("audio_name");
  j.model = r.string_or("model", "");
  j.submitted_at_ms = r.integer_or("submitted_at_ms", 0, kMaxCount, 0);
  j.started_at_ms = r.integer_or("started_at_ms", 0, kMaxCount, 0);
  j.finished_at_ms = r.integer_or("finished_at_ms", 0, kMaxCount, 0);
  j.attempts = static_cast<int>(r.integer_or("attempts", 0, std::numeric_limits<int>::max(), 0));
  j.error = r.string_or("error", "");
  if (const json* options = r.find("options")) j.options = read_options(*options, r.field("options"));
  const json& items = r.array("items", kMaxItems);
  for (std::size_t i = 0; i < items.size(); ++i)
    j.items.push_back(read_item(items[i], r.field("items") + "[" + std::to_string(i) + "]"));
  return j;
}

json event_json(const JobEvent& e) {
  json j = {{"type", "event"}, {"job_id", e.job_id}, {"event", event_name(e.body)}};
  std::visit(
      [&j](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, QueuedEvent>) {
          j["position"] = body.position;
        } else if constexpr (std::is_same_v<T, LoadingModelEvent>) {
          j["model"] = body.model;
        } else if constexpr (std::is_same_v<T, RunningEvent>) {
          j.update({{"item", body.item}, {"items", body.items}, {"stage", body.stage},
                    {"frames_done", body.frames_done}, {"frames_total", body.frames_total},
                    {"fps", body.fps}, {"eta_s", body.eta_s}});
        } else if constexpr (std::is_same_v<T, ItemDoneEvent>) {
          j.update({{"item", body.item}, {"output", to_string(body.output)}, {"frames", body.frames},
                    {"frames_without_face", body.frames_without_face}, {"wall_s", body.wall_s},
                    {"fps", body.fps}, {"avatar_cache", body.avatar_cache}, {"detect_s", body.detect_s},
                    {"output_fps", body.output_fps}, {"frames_gated", body.frames_gated}});
          if (!body.output_name.empty()) j["output_name"] = body.output_name;
        } else if constexpr (std::is_same_v<T, DoneEvent>) {
          json outputs = json::array();
          for (const auto place : body.outputs) outputs.push_back(to_string(place));
          j.update({{"outputs", outputs}, {"frames", body.frames},
                    {"frames_without_face", body.frames_without_face}, {"wall_s", body.wall_s},
                    {"fps", body.fps}});
        } else if constexpr (std::is_same_v<T, FailedEvent>) {
          j["cause"] = body.cause;
        }
      },
      e.body);
  return j;
}

constexpr std::array<std::string_view, 7> kEventNames{"queued", "loading_model", "running", "item_done",
                                                      "done",   "failed",        "cancelled"};

JobEvent read_event(ObjectReader& r) {
  JobEvent e;
  e.job_id = job_id_field(r);
  const std::string name = r.string("event");
  const auto count = [&](std::string_view key) { return r.integer(key, 0, kMaxCount); };
  const auto index = [&](std::string_view key) {
    return static_cast<int>(r.integer(key, 0, static_cast<std::int64_t>(kMaxItems)));
  };
  if (name == "queued") {
    e.body = QueuedEvent{static_cast<int>(r.integer("position", 0, std::numeric_limits<int>::max()))};
  } else if (name == "loading_model") {
    e.body = LoadingModelEvent{short_name(r, "model", false)};
  } else if (name == "running") {
    RunningEvent b;
    b.item = index("item");
    b.items = index("items");
    b.stage = short_name(r, "stage", false);
    b.frames_done = count("frames_done");
    b.frames_total = count("frames_total");
    b.fps = r.number_or("fps", 0);
    b.eta_s = r.number_or("eta_s", 0);
    e.body = b;
  } else if (name == "item_done") {
    ItemDoneEvent b;
    b.item = index("item");
    b.output = r.enumeration("output", kOutputPlaces);
    b.frames = count("frames");
    b.frames_without_face = count("frames_without_face");
    b.wall_s = r.number_or("wall_s", 0);
    b.fps = r.number_or("fps", 0);
    b.output_name = r.string_or("output_name", "");
    b.output_fps = r.number_or("output_fps", 0);
    b.avatar_cache = r.string_or("avatar_cache", "");
    b.detect_s = r.number_or("detect_s", 0);
    b.frames_gated = r.integer_or("frames_gated", 0, kMaxCount, 0);
    e.body = b;
  } else if (name == "done") {
    DoneEvent b;
    const json& outputs = r.array("outputs", kMaxItems);
    for (std::size_t i = 0; i < outputs.size(); ++i)
      b.outputs.push_back(ObjectReader::as_enum(outputs[i], r.field("outputs") + "[" + std::to_string(i) + "]",
                                                kOutputPlaces));
    b.frames = count("frames");
    b.frames_without_face = count("frames_without_face");
    b.wall_s = r.number_or("wall_s", 0);
    b.fps = r.number_or("fps", 0);
    e.body = b;
  } else if (name == "failed") {
    e.body = FailedEvent{r.string("cause")};
  } else if (name == "cancelled") {
    e.body = CancelledEvent{};
  } else {
    malformed(r.field("event"), "unknown event '" + name.substr(0, 40) + "'");
  }
  return e;
}

json model_row_json(const ModelRow& m) {
  json j = {{"name", m.name},
            {"kind", m.kind},
            {"device", m.device},
            {"precision", m.precision},
            {"state", m.state},
            {"resident_bytes", m.resident_bytes},
            {"leases", m.leases},
            {"load_s", m.load_s},
            {"warmup_s", m.warmup_s},
            {"heartbeat_ms", m.heartbeat_ms},
            {"generation", m.generation},
            {"untrained", m.untrained}};
  if (m.expires_in_s) j["expires_in_s"] = *m.expires_in_s;
  if (m.heartbeat_at_ms) j["heartbeat_at_ms"] = *m.heartbeat_at_ms;
  if (m.keep_alive_s) j["keep_alive_s"] = *m.keep_alive_s;
  return j;
}

json device_memory_json(const DeviceMemoryRow& m) {
  json j = {{"device", m.device}, {"models_bytes", m.models_bytes}};
  if (m.allocated_bytes) j["allocated_bytes"] = *m.allocated_bytes;
  if (m.reserved_bytes) j["reserved_bytes"] = *m.reserved_bytes;
  return j;
}

ModelRow read_model_row(const json& value, const std::string& context) {
  ObjectReader r(value, context);
  ModelRow m;
  m.name = r.string("name");
  m.kind = r.string("kind");
  m.device = r.string("device");
  m.precision = r.string_or("precision", "");
  m.state = r.string("state");
  m.resident_bytes = r.unsigned_or("resident_bytes", 0);
  m.leases = static_cast<int>(r.integer_or("leases", 0, std::numeric_limits<int>::max(), 0));
  m.load_s = r.number_or("load_s", 0);
  m.warmup_s = r.number_or("warmup_s", 0);
  m.heartbeat_ms = r.number_or("heartbeat_ms", -1);
  m.expires_in_s = r.optional_number("expires_in_s");
  m.generation = r.unsigned_or("generation", 0);
  m.untrained = r.boolean_or("untrained", false);
  if (const auto at = r.optional_number("heartbeat_at_ms")) m.heartbeat_at_ms = static_cast<std::int64_t>(*at);
  m.keep_alive_s = r.optional_number("keep_alive_s");
  r.finish();
  return m;
}

DeviceMemoryRow read_device_memory(const json& value, const std::string& context) {
  ObjectReader r(value, context);
  DeviceMemoryRow m;
  m.device = r.string("device");
  m.models_bytes = r.unsigned_or("models_bytes", 0);
  if (r.find("allocated_bytes")) m.allocated_bytes = r.unsigned_or("allocated_bytes", 0);
  if (r.find("reserved_bytes")) m.reserved_bytes = r.unsigned_or("reserved_bytes", 0);
  r.finish();
  return m;
}

struct ResponseWriter {
  json operator()(const HelloResponse& m) const {
    return {{"type", "hello"}, {"version", m.version}, {"daemon_version", m.daemon_version}};
  }
  json operator()(const PongResponse& m) const {
    json j{{"type", "pong"}, {"state", m.state}};
    if (!m.detail.empty()) j["detail"] = m.detail;
    return j;
  }
  json operator()(const VersionResponse& m) const {
    return {{"type", "version"}, {"daemon_version", m.daemon_version}, {"protocol", m.protocol}};
  }
  json operator()(const ErrorResponse& m) const {
    return {{"type", "error"}, {"code", to_string(m.code)}, {"message", m.message}};
  }
  json operator()(const SubmittedResponse& m) const {
    return {{"type", "submitted"}, {"job_id", m.job_id}, {"items", m.items}};
  }
  json operator()(const JobStatus& m) const { return to_json(m); }
  json operator()(const JobEvent& m) const { return event_json(m); }
  json operator()(const ListResponse& m) const {
    json jobs = json::array();
    for (const auto& job : m.jobs) {
      json j = to_json(job);
      j.erase("type");
      jobs.push_back(std::move(j));
    }
    json j = {{"type", "list"}, {"jobs", jobs}};
    if (m.more) j["more"] = true;
    return j;
  }
  json operator()(const ModelsResponse& m) const {
    json rows = json::array();
    for (const auto& row : m.rows) rows.push_back(model_row_json(row));
    json devices = json::array();
    for (const auto& device : m.devices) devices.push_back(device_memory_json(device));
    json j{{"type", "models"}, {"rows", rows}, {"devices", devices}, {"daemon_rss_bytes", m.daemon_rss_bytes}};
    if (!m.message.empty()) j["message"] = m.message;
    return j;
  }
  json operator()(const LogsResponse& m) const {
    return {{"type", "logs"}, {"job_id", m.job_id}, {"text", m.text}, {"truncated", m.truncated}};
  }
  json operator()(const FetchedResponse& m) const {
    json items = json::array();
    for (const auto& item : m.items) items.push_back({{"item", item.item}, {"bytes", item.bytes}});
    return {{"type", "fetched"}, {"job_id", m.job_id}, {"items", items}};
  }
  json operator()(const ReloadedResponse& m) const { return {{"type", "reloaded"}, {"message", m.message}}; }
};

ErrorCode read_error_code(ObjectReader& r) {
  const std::string text = r.string("code");
  const ErrorCode code = error_code_from_string(text);
  if (to_string(code) != text) out_of_range(r.field("code"), "unknown error code '" + text.substr(0, 40) + "'");
  return code;
}

Response read_response(MessageType type, ObjectReader& r) {
  switch (type) {
    case MessageType::hello: {
      HelloResponse m;
      m.version = static_cast<int>(r.integer("version", 0, std::numeric_limits<int>::max()));
      m.daemon_version = r.string("daemon_version");
      return m;
    }
    case MessageType::pong: {
      PongResponse m;
      m.state = r.string_or("state", "ready");
      m.detail = r.string_or("detail", "");
      if (m.state != "ready" && m.state != "loading" && m.state != "degraded")
        out_of_range(r.field("state"), "expected ready, loading or degraded, got '" + m.state.substr(0, 40) + "'");
      return m;
    }
    case MessageType::version: {
      VersionResponse m;
      m.daemon_version = r.string("daemon_version");
      m.protocol = static_cast<int>(r.integer("protocol", 0, std::numeric_limits<int>::max()));
      return m;
    }
    case MessageType::error: {
      ErrorResponse m;
      m.code = read_error_code(r);
      m.message = r.string("message");
      return m;
    }
    case MessageType::submitted: {
      SubmittedResponse m;
      m.job_id = job_id_field(r);
      m.items = static_cast<int>(r.integer("items", 1, static_cast<std::int64_t>(kMaxItems)));
      return m;
    }
    case MessageType::job: return read_job(r);
    case MessageType::event: return read_event(r);
    case MessageType::list: {
      ListResponse m;
      const json& jobs = r.require("jobs");
      if (!jobs.is_array()) malformed(r.field("jobs"), "expected an array, got " + describe(jobs));
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        ObjectReader job(jobs[i], r.field("jobs") + "[" + std::to_string(i) + "]");
        m.jobs.push_back(read_job(job));
        job.finish();
      }
      m.more = r.boolean_or("more", false);
      return m;
    }
    case MessageType::models: {
      ModelsResponse m;
      const json& rows = r.require("rows");
      if (!rows.is_array()) malformed(r.field("rows"), "expected an array, got " + describe(rows));
      for (std::size_t i = 0; i < rows.size(); ++i)
        m.rows.push_back(read_model_row(rows[i], r.field("rows") + "[" + std::to_string(i) + "]"));
      if (r.find("devices")) {
        const json& devices = r.require("devices");
        if (!devices.is_array()) malformed(r.field("devices"), "expected an array, got " + describe(devices));
        for (std::size_t i = 0; i < devices.size(); ++i)
          m.devices.push_back(read_device_memory(devices[i], r.field("devices") + "[" + std::to_string(i) + "]"));
      }
      m.daemon_rss_bytes = r.unsigned_or("daemon_rss_bytes", 0);
      m.message = r.string_or("message", "");
      return m;
    }
    case MessageType::logs: {
      LogsResponse m;
      m.job_id = job_id_field(r);
      m.text = r.string("text");
      m.truncated = r.boolean_or("truncated", false);
      return m;
    }
    case MessageType::fetched: {
      FetchedResponse m;
      m.job_id = job_id_field(r);
      const json& items = r.array("items", kMaxItems);
      for (std::size_t i = 0; i < items.size(); ++i) {
        ObjectReader item(items[i], r.field("items") + "[" + std::to_string(i) + "]");
        FetchedItem f;
        f.item = static_cast<int>(item.integer("item", 0, static_cast<std::int64_t>(kMaxItems) - 1));
        f.bytes = item.unsigned_or("bytes", 0);
        item.finish();
        m.items.push_back(f);
      }
      return m;
    }
    case MessageType::reloaded: return ReloadedResponse{r.string_or("message", "")};
    default: break;
  }
  malformed(r.field("type"), "'" + std::string(to_string(type)) + "' is not a response");
}

// ---------------------------------------------------------------------------------------------
// Payload parsing.
constexpr int kMaxJsonDepth = 16;

// nlohmann's parser recurses per nesting level: refuse deep nesting before parsing so that a hostile
// frame of a million '[' cannot exhaust the stack.
void check_nesting(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(ErrorCode::protocol, "message nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_payload(std::string_view payload) {
  if (payload.size() > kMaxFrameBytes)
    throw Error(ErrorCode::protocol, "message of " + std::to_string(payload.size()) + " bytes exceeds " +
                                         std::to_string(kMaxFrameBytes));
  check_nesting(payload);
  // A key given twice would be read as its last value while a checker of the first one saw
  // another: refused, like any other ambiguity.
  std::vector<std::set<std::string>> keys_seen;
  std::optional<std::string> duplicate;
  const json::parser_callback_t find_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_seen.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys_seen.empty()) keys_seen.pop_back();
    } else if (event == json::parse_event_t::key && !keys_seen.empty() && parsed.is_string()) {
      if (!keys_seen.back().insert(parsed.get<std::string>()).second && !duplicate)
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json message = json::parse(payload.begin(), payload.end(), find_duplicates, /*allow_exceptions=*/false);
  if (message.is_discarded()) throw Error(ErrorCode::protocol, "message is not valid JSON (UTF-8)");
  if (duplicate)
    throw Error(ErrorCode::protocol, "key \"" + duplicate->substr(0, 64) + "\" appears twice in one object");
  if (!message.is_object()) throw Error(ErrorCode::protocol, "message is not a JSON object");
  return message;
}

MessageType read_type(ObjectReader& r, bool request) {
  const std::string name = r.string("type");
  const auto type = message_type_from_string(name);
  if (!type) throw Error(ErrorCode::protocol, "unknown message type '" + name.substr(0, 40) + "'");
  if (request ? !is_request_type(*type) : !is_response_type(*type))
    throw Error(ErrorCode::protocol,
                "'" + name + "' is not a " + std::string(request ? "request" : "response") + " message");
  return *type;
}

std::string dump(const json& message) { return message.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

// -----------------------------------------------------------------------------------------------
std::string_view to_string(MessageType type) { return info(type).name; }

std::optional<MessageType> message_type_from_string(std::string_view name) {
  for (const auto& entry : kTypes)
    if (entry.name == name) return entry.type;
  return std::nullopt;
}

bool is_request_type(MessageType type) { return info(type).request; }
bool is_response_type(MessageType type) { return info(type).response; }

std::string_view to_string(Blend blend) { return enum_name(kBlends, blend); }
std::string_view to_string(Loop loop) { return enum_name(kLoops, loop); }
std::string_view to_string(JobState state) { return enum_name(kJobStates, state); }
std::string_view to_string(ItemState state) { return enum_name(kItemStates, state); }
std::string_view to_string(OutputPlace place) { return enum_name(kOutputPlaces, place); }
bool is_finished(JobState state) { return state == JobState::done || state == JobState::failed || state == JobState::cancelled; }

Blend blend_from_string(std::string_view text) {
  if (const auto value = enum_value(kBlends, text)) return *value;
  throw Error(ErrorCode::invalid_argument, "blend: expected feather|hard, got '" + std::string(text) + "'");
}

Loop loop_from_string(std::string_view text) {
  if (const auto value = enum_value(kLoops, text)) return *value;
  throw Error(ErrorCode::invalid_argument, "loop: expected pingpong|forward, got '" + std::string(text) + "'");
}

const std::vector<std::string>& x264_presets() {
  static const std::vector<std::string> presets{"ultrafast", "superfast", "veryfast", "faster",  "fast",
                                                "medium",    "slow",      "slower",   "veryslow"};
  return presets;
}

int SubmitRequest::expected_fds() const {
  return static_cast<int>(1 + item_names.size() + output_names.size());
}

MessageType type_of(const Request& request) {
  static constexpr std::array<MessageType, std::variant_size_v<Request>> kOrder{
      MessageType::hello,  MessageType::ping,  MessageType::version, MessageType::submit, MessageType::status,
      MessageType::list,   MessageType::watch, MessageType::wait,    MessageType::cancel, MessageType::fetch,
      MessageType::logs,   MessageType::models, MessageType::reload};
  return kOrder[request.index()];
}

MessageType type_of(const Response& response) {
  static constexpr std::array<MessageType, std::variant_size_v<Response>> kOrder{
      MessageType::hello, MessageType::pong,   MessageType::version, MessageType::error,
      MessageType::submitted, MessageType::job, MessageType::event,  MessageType::list,
      MessageType::models, MessageType::logs,  MessageType::fetched, MessageType::reloaded};
  return kOrder[response.index()];
}

std::size_t expected_fds(const Request& request) {
  if (const auto* submit = std::get_if<SubmitRequest>(&request)) return static_cast<std::size_t>(submit->expected_fds());
  if (const auto* fetch = std::get_if<FetchRequest>(&request)) return fetch->items.size();
  return 0;
}

std::string_view event_name(const EventBody& body) { return kEventNames[body.index()]; }

bool is_terminal(const EventBody& body) {
  return std::holds_alternative<DoneEvent>(body) || std::holds_alternative<FailedEvent>(body) ||
         std::holds_alternative<CancelledEvent>(body);
}

nlohmann::json to_json(const Request& request) { return std::visit(RequestWriter{}, request); }
nlohmann::json to_json(const Response& response) { return std::visit(ResponseWriter{}, response); }

nlohmann::json to_json(const SubmitOptions& o) {
  json j = json::object();
  if (o.blend) j["blend"] = to_string(*o.blend);
  if (o.strict) j["strict"] = true;
  if (o.loop) j["loop"] = to_string(*o.loop);
  if (o.fps) j["fps"] = *o.fps;
  if (o.box) j["box"] = {o.box->top, o.box->bottom, o.box->left, o.box->right};
  if (o.nosmooth) j["nosmooth"] = true;
  if (o.generator) j["generator"] = *o.generator;
  if (o.detector) j["detector"] = *o.detector;
  if (o.crf) j["crf"] = *o.crf;
  if (o.lossless) j["lossless"] = true;
  if (o.preset) j["preset"] = *o.preset;
  if (!o.avatar_cache) j["avatar_cache"] = false;
  if (!o.silence_gate) j["silence_gate"] = false;
  if (o.enhance) j["enhance"] = *o.enhance;
  return j;
}

SubmitOptions submit_options_from_json(const nlohmann::json& options) { return read_options(options, "options"); }

SubmitOptions stored_submit_options(const nlohmann::json& options) {
  if (!options.is_object()) return read_options(options, "options");
  json known = json::object();
  for (const auto& [key, value] : options.items())
    if (std::find(kOptionKeys.begin(), kOptionKeys.end(), key) != kOptionKeys.end()) known[key] = value;
  return read_options(known, "options");
}

nlohmann::json to_json(const JobStatus& m) {
  json items = json::array();
  for (const auto& item : m.items) items.push_back(item_json(item));
  return {{"type", "job"},
          {"job_id", m.job_id},
          {"uid", m.uid},
          {"state", to_string(m.state)},
          {"position", m.position},
          {"audio_name", m.audio_name},
          {"model", m.model},
          {"submitted_at_ms", m.submitted_at_ms},
          {"started_at_ms", m.started_at_ms},
          {"finished_at_ms", m.finished_at_ms},
          {"attempts", m.attempts},
          {"error", m.error},
          {"options", to_json(m.options)},
          {"items", items}};
}

JobStatus job_status_from_json(const nlohmann::json& job) {
  ObjectReader r(job, "job");
  if (const json* type = r.find("type"); type && *type != "job") malformed(r.field("type"), "expected \"job\"");
  JobStatus status = read_job(r);
  r.finish();
  return status;
}

nlohmann::json to_json(const JobEvent& event) { return event_json(event); }

Request request_from_json(const nlohmann::json& message) {
  ObjectReader probe(message, "message");
  const MessageType type = read_type(probe, true);
  ObjectReader r(message, std::string(to_string(type)));
  r.require("type");
  Request request = read_request(type, r);
  r.finish();
  return request;
}

Response response_from_json(const nlohmann::json& message) {
  ObjectReader probe(message, "message");
  const MessageType type = read_type(probe, false);
  ObjectReader r(message, std::string(to_string(type)));
  r.require("type");
  Response response = read_response(type, r);
  r.finish();
  return response;
}

std::string encode(const Request& request) { return dump(to_json(request)); }
std::string encode(const Response& response) { return dump(to_json(response)); }
Request parse_request(std::string_view payload) { return request_from_json(parse_payload(payload)); }
Response parse_response(std::string_view payload) { return response_from_json(parse_payload(payload)); }

std::string encode_frame(std::string_view payload) {
  if (payload.empty()) throw Error(ErrorCode::protocol, "empty frame");
  if (payload.size() > kMaxFrameBytes)
    throw Error(ErrorCode::protocol, "frame of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                                         std::to_string(kMaxFrameBytes));
  const auto size = static_cast<std::uint32_t>(payload.size());
  std::string frame;
  frame.reserve(kFrameHeaderBytes + payload.size());
  frame.push_back(static_cast<char>((size >> 24) & 0xff));
  frame.push_back(static_cast<char>((size >> 16) & 0xff));
  frame.push_back(static_cast<char>((size >> 8) & 0xff));
  frame.push_back(static_cast<char>(size & 0xff));
  frame.append(payload);
  return frame;
}

std::size_t decode_frame_length(const unsigned char (&header)[kFrameHeaderBytes]) {
  const std::uint32_t size = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                             (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
  if (size == 0) throw Error(ErrorCode::protocol, "empty frame");
  if (size > kMaxFrameBytes)
    throw Error(ErrorCode::protocol, "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                                         std::to_string(kMaxFrameBytes));
  return size;
}

void require_supported_version(int version) {
  if (version != kProtocolVersion)
    throw Error(ErrorCode::protocol, "unsupported protocol version " + std::to_string(version) + " (daemon speaks " +
                                         std::to_string(kProtocolVersion) + ")");
}

std::optional<std::string> first_control_character(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    // C0 and DEL, and C1 (U+0080..U+009F, 0xC2 0x80..0x9F in UTF-8): what a terminal obeys.
    const bool c1 = byte == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if (byte < 0x20 || byte == 0x7F || c1) {
      const unsigned code = c1 ? static_cast<unsigned char>(text[i + 1]) : byte;
      char buffer[16];
      std::snprintf(buffer, sizeof buffer, "U+%04X", code);
      return std::string(buffer);
    }
  }
  return std::nullopt;
}

void validate_display_name(std::string_view name, std::string_view field) {
  const std::string f(field);
  if (name.empty()) throw Error(ErrorCode::invalid_argument, f + ": must not be empty");
  if (name.size() > kMaxNameBytes)
    throw Error(ErrorCode::invalid_argument, f + ": at most " + std::to_string(kMaxNameBytes) + " bytes");
  if (name.find('/') != std::string_view::npos)
    throw Error(ErrorCode::invalid_argument, f + ": a display name, not a path: '/' is not allowed");
  if (name.find('\0') != std::string_view::npos)
    throw Error(ErrorCode::invalid_argument, f + ": NUL is not allowed");
  if (name == "." || name == "..") throw Error(ErrorCode::invalid_argument, f + ": '" + std::string(name) + "' is not a name");
  // Names reach terminals (heygemctl list of another user, root's) and the daemon's log.
  if (const auto bad = first_control_character(name))
    throw Error(ErrorCode::invalid_argument, f + ": control character " + *bad + " is not allowed in a name");
}

bool is_path_like_key(std::string_view key) {
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const std::string_view marker : {"path", "file", "dir", "url", "uri"})
    if (lower.find(marker) != std::string::npos) return true;
  return false;
}

}  // namespace heygem::protocol
