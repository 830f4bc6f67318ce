#pragma once
// The heygemd <-> heygemctl protocol, every message defined here and documented in docs/protocol.md.
//
// A frame is a 4-byte big-endian payload length (1 .. kMaxFrameBytes) followed by that many bytes of
// UTF-8 JSON: one object whose "type" names the message. File descriptors travel beside a frame
// (SCM_RIGHTS, see common/fd_passing.hpp); requests never carry paths, so the daemon never opens a
// file a client names. Parsing is strict: unknown keys, wrong types, and path-like keys are rejected
// with heygem::Error naming the field.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"

namespace heygem::protocol {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMaxFrameBytes = std::size_t{1} << 20;  // 1 MiB payload
inline constexpr std::size_t kFrameHeaderBytes = 4;
inline constexpr std::size_t kMaxItems = 64;                          // videos per job
inline constexpr std::size_t kMaxFdsPerFrame = 1 + 2 * kMaxItems;     // audio + videos + outputs
inline constexpr std::size_t kMaxNameBytes = 255;                     // display names (basenames)

// ---------------------------------------------------------------------------------------------
// Message types: the one table of names. A name may be a request, a response, or both (hello,
// version, list, models, logs are both: the direction tells them apart).
enum class MessageType {
  hello,
  ping,
  pong,
  version,
  submit,
  submitted,
  status,
  job,
  list,
  watch,
  wait,
  event,
  cancel,
  fetch,
  fetched,
  logs,
  models,
  reload,
  reloaded,
  error,
};

std::string_view to_string(MessageType type);
std::optional<MessageType> message_type_from_string(std::string_view name);
bool is_request_type(MessageType type);
bool is_response_type(MessageType type);

// ---------------------------------------------------------------------------------------------
// Submit options: the one typed model of a job's options, validated once by its parser (the daemon
// maps it to the pipeline's ItemOptions). Unset = daemon default.
enum class Blend { feather, hard };
enum class Loop { pingpong, forward };

struct FaceBoxOption {
  int top = 0, bottom = 0, left = 0, right = 0;  // pixels, half-open, top < bottom, left < right
  bool operator==(const FaceBoxOption&) const = default;
};

struct SubmitOptions {
  std::optional<Blend> blend;
  bool strict = false;
  std::optional<Loop> loop;
  std::optional<double> fps;            // (0, 240]
  std::optional<FaceBoxOption> box;
  bool nosmooth = false;
  std::optional<std::string> generator;  // model names from the daemon's config
  std::optional<std::string> detector;
  std::optional<int> crf;               // 0..51, exclusive with lossless
  bool lossless = false;
  std::optional<std::string> preset;    // an x264 preset name
  bool avatar_cache = true;             // false: detect the faces even if the daemon cached them
  bool silence_gate = true;             // false: generate the mouth in silent stretches too
  std::optional<bool> enhance;          // GFPGAN face restoration; unset = the daemon's default
  bool operator==(const SubmitOptions&) const = default;
};

std::string_view to_string(Blend blend);
std::string_view to_string(Loop loop);
Blend blend_from_string(std::string_view text);  // throws Error(invalid_argument)
Loop loop_from_string(std::string_view text);
// The x264 preset names the daemon accepts.
const std::vector<std::string>& x264_presets();

// ---------------------------------------------------------------------------------------------
// Requests (client -> daemon).
struct HelloRequest {
  int version = kProtocolVersion;
  std::string client;  // free text, e.g. "heygemctl 0.1.0"
};
struct PingRequest {};
struct VersionRequest {};

// One audio x N videos. The frame carries `fds` descriptors, in this order: the audio, the N videos,
// then (when output_names is not empty) one writable output per item. Names are display names for
// messages only (basenames: no '/', no NUL); the daemon never opens them.
struct SubmitRequest {
  std::string audio_name;
  std::vector<std::string> item_names;    // one per video, 1..kMaxItems
  std::vector<std::string> output_names;  // empty, or one per item: outputs passed as fds
  SubmitOptions options;
  int fds = 0;                            // must equal expected_fds()
  int expected_fds() const;
};

struct StatusRequest {
  std::string job_id;
};
struct ListRequest {
  bool all = false;  // false: queued and running jobs only; true: finished ones too
};
struct WatchRequest {
  std::string job_id;
};
struct WaitRequest {
  std::string job_id;
};
struct CancelRequest {
  std::string job_id;
};
// Copies finished outputs out of the spool: the frame carries one writable fd per listed item.
struct FetchRequest {
  std::string job_id;
  std::vector<int> items;  // 0-based item indices, no duplicates
  int fds = 0;             // must equal items.size()
};
struct LogsRequest {
  std::string job_id;
};
// "models": the table; with action "load" or "unload", that model (by name) first.
struct ModelsRequest {
  std::string action;  // "", "load" or "unload"
  std::string name;    // the model, for load and unload
};
struct ReloadRequest {};

using Request = std::variant<HelloRequest, PingRequest, VersionRequest, SubmitRequest, StatusRequest,
                             ListRequest, WatchRequest, WaitRequest, CancelRequest, FetchRequest,
                             LogsRequest, ModelsRequest, ReloadRequest>;

MessageType type_of(const Request& request);
// How many fds must arrive with this request's frame (0 for all but submit and fetch).
std::size_t expected_fds(const Request& request);

// ---------------------------------------------------------------------------------------------
// Responses and events (daemon -> client).
struct HelloResponse {
  int version = kProtocolVersion;
  std::string daemon_version;
};
struct PongResponse {
  // "ready"; "loading" while heygemd loads its models at start; "degraded" while it cannot take new
  // jobs (its state folder is full)
  std::string state = "ready";
  std::string detail;           // "loading models (1/2)", the storage problem; empty when ready
};
struct VersionResponse {
  std::string daemon_version;
  int protocol = kProtocolVersion;
};
struct ErrorResponse {
  ErrorCode code = ErrorCode::internal;
  std::string message;
};
struct SubmittedResponse {
  std::string job_id;
  int items = 0;
};

enum class JobState { queued, running, done, failed, cancelled };
enum class ItemState { pending, running, done, failed, cancelled };
enum class OutputPlace { fd, spool };  // written into the client's fd, or kept in the spool for fetch

std::string_view to_string(JobState state);
std::string_view to_string(ItemState state);
std::string_view to_string(OutputPlace place);
bool is_finished(JobState state);

struct ItemStatus {
  std::string name;          // the video's display name
  std::string output_name;   // the client's output display name, "" when none was passed
  ItemState state = ItemState::pending;
  std::string stage;         // current stage while running ("audio", "render", "finalize"), else ""
  std::int64_t frames_done = 0, frames_total = 0;
  std::int64_t frames_without_face = 0;
  double fps = 0, eta_s = 0, wall_s = 0;
  std::string avatar_cache{};  // once done: "hit" (faces from the avatar cache), "miss", "off"
  double detect_s = 0;       // once done: busy time of the face detection (0 on a hit)
  std::int64_t frames_gated = 0;  // once done: silent frames the silence gate left as the source
  std::uint64_t output_bytes = 0;
  bool delivered = false;    // written into the client's output fd
  bool in_spool = false;     // waits in the spool for fetch
  std::string error;         // cause when failed
  std::string device;        // where it runs or ran ("cuda:1"); "" before it started
};

// Type "job": a status snapshot.
struct JobStatus {
  std::string job_id;
  std::uint32_t uid = 0;     // owner
  JobState state = JobState::queued;
  int position = 0;          // 1-based place in the queue while queued, else 0
  std::string audio_name;
  std::string model;         // generator that runs / ran it, "" before
  std::int64_t submitted_at_ms = 0, started_at_ms = 0, finished_at_ms = 0;  // unix ms, 0 = not yet
  int attempts = 0;
  std::string error;         // cause when failed
  SubmitOptions options;
  std::vector<ItemStatus> items;
};

// Type "event": one step of a job's progress, streamed by watch (and the final one by wait).
struct QueuedEvent {
  int position = 0;  // 1-based
};
struct LoadingModelEvent {
  std::string model;
};
struct RunningEvent {
  int item = 0;  // 0-based
  int items = 0;
  std::string stage;
  std::int64_t frames_done = 0, frames_total = 0;
  double fps = 0, eta_s = 0;
};
struct ItemDoneEvent {
  int item = 0;
  OutputPlace output = OutputPlace::spool;
  std::int64_t frames = 0, frames_without_face = 0;
  double wall_s = 0, fps = 0;  // fps: processing speed (frames / wall_s), as DoneEvent's
  std::string avatar_cache{};  // as ItemStatus
  double detect_s = 0;
  std::string output_name{};   // the output's name when written to the client's file ("" in the spool)
  double output_fps = 0;       // the output video's frame rate
  std::int64_t frames_gated = 0;  // as ItemStatus
};
struct DoneEvent {
  std::vector<OutputPlace> outputs;  // one per item
  std::int64_t frames = 0, frames_without_face = 0;
  double wall_s = 0, fps = 0;
};
struct FailedEvent {
  std::string cause;
};
struct CancelledEvent {};

using EventBody = std::variant<QueuedEvent, LoadingModelEvent, RunningEvent, ItemDoneEvent, DoneEvent,
                               FailedEvent, CancelledEvent>;
std::string_view event_name(const EventBody& body);  // "queued", "loading_model", ...
bool is_terminal(const EventBody& body);             // done, failed, cancelled

struct JobEvent {
  std::string job_id;
  EventBody body;
};

struct ListResponse {
  std::vector<JobStatus> jobs;
  // A long listing comes in parts, each its own `list` frame: true on every part but the last.
  bool more = false;
};

// One row of `heygemctl models`.
struct ModelRow {
  std::string name, kind, device, precision, state;  // state: unloaded|loading|warm|busy|unhealthy
  std::uint64_t resident_bytes = 0;
  int leases = 0;
  double load_s = 0, warmup_s = 0;
  double heartbeat_ms = -1;                          // last heartbeat latency, -1 = none yet
  std::optional<double> expires_in_s;                // keep_alive left while idle; unset = never
  std::uint64_t generation = 0;
  std::optional<std::int64_t> heartbeat_at_ms;       // when the last heartbeat ran (Unix ms); unset = never
  std::optional<double> keep_alive_s;                // the configured keep_alive; unset = forever
  bool untrained = false;                            // the hash-init generator: not a real lip-sync
};
// Memory of one device: the models' own bytes and, on CUDA, what the caching allocator holds.
struct DeviceMemoryRow {
  std::string device;
  std::uint64_t models_bytes = 0;              // the resident models' weights and buffers
  std::optional<std::uint64_t> allocated_bytes;  // CUDA: in live tensors
  std::optional<std::uint64_t> reserved_bytes;   // CUDA: held by the caching allocator (its cache included)
};
struct ModelsResponse {
  std::vector<ModelRow> rows;
  std::vector<DeviceMemoryRow> devices;
  std::uint64_t daemon_rss_bytes = 0;  // heygemd's resident memory
  std::string message;                 // what a load or unload did
};

struct LogsResponse {
  std::string job_id;
  std::string text;        // the job's log; its tail when it would not fit a frame
  bool truncated = false;
};

struct FetchedItem {
  int item = 0;
  std::uint64_t bytes = 0;
};
struct FetchedResponse {
  std::string job_id;
  std::vector<FetchedItem> items;
};

struct ReloadedResponse {
  std::string message;
};

using Response = std::variant<HelloResponse, PongResponse, VersionResponse, ErrorResponse,
                              SubmittedResponse, JobStatus, JobEvent, ListResponse, ModelsResponse,
                              LogsResponse, FetchedResponse, ReloadedResponse>;

MessageType type_of(const Response& response);

// ---------------------------------------------------------------------------------------------
// JSON. from_json rejects unknown keys, missing keys, wrong types and path-like keys with
// heygem::Error(ErrorCode::protocol), and out-of-range values or bad names with
// Error(ErrorCode::invalid_argument); each message names the field ("submit.options.crf: ...").
nlohmann::json to_json(const Request& request);
nlohmann::json to_json(const Response& response);
Request request_from_json(const nlohmann::json& message);
Response response_from_json(const nlohmann::json& message);
nlohmann::json to_json(const SubmitOptions& options);  // the pipeline's option keys
SubmitOptions submit_options_from_json(const nlohmann::json& options);
// A stored job's options (its record may come from a newer heygemd): keys this version does not
// know are left out; a known key with a bad value throws as above.
SubmitOptions stored_submit_options(const nlohmann::json& options);
nlohmann::json to_json(const JobStatus& job);
JobStatus job_status_from_json(const nlohmann::json& job);
nlohmann::json to_json(const JobEvent& event);

// Payload text <-> message. Malformed JSON, a non-object, a missing or unknown type, or a message
// of the wrong direction -> Error(protocol).
std::string encode(const Request& request);
std::string encode(const Response& response);
Request parse_request(std::string_view payload);
Response parse_response(std::string_view payload);

// ---------------------------------------------------------------------------------------------
// Framing.
// Header + payload, ready to write. Throws Error(protocol) if the payload is empty or too big.
std::string encode_frame(std::string_view payload);
// The payload length a header announces; throws Error(protocol) for 0 or > kMaxFrameBytes, so a
// reader checks the size before it allocates anything.
std::size_t decode_frame_length(const unsigned char (&header)[kFrameHeaderBytes]);

// ---------------------------------------------------------------------------------------------
// Validation shared by both ends.
// Throws Error(protocol, "unsupported protocol version N (daemon speaks 1)") for another version.
void require_supported_version(int version);
// A display name: 1..kMaxNameBytes bytes, no '/', no NUL, not "." or "..". Throws
// Error(invalid_argument) naming `field`.
void validate_display_name(std::string_view name, std::string_view field);
// The first control character in `text` (C0, DEL or C1, which terminals obey) as "U+001B", if any.
std::optional<std::string> first_control_character(std::string_view text);
// Keys that name a file or folder ("path", "file", "output_path", "dir", ...): never accepted.
bool is_path_like_key(std::string_view key);

}  // namespace heygem::protocol
