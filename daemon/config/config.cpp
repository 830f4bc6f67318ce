#include "daemon/config/config.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/cluster/redis_connection.hpp"
#include "common/errors.hpp"
#include "common/socket_path.hpp"

namespace heygem::config {
namespace {

const std::string kDefaults = R"(# heygemd configuration. Every key is optional; these are the defaults.
socket:
  path: ""            # "" = $XDG_RUNTIME_DIR/heygem/heygemd.sock (user) or /run/heygem/heygemd.sock (root)
  mode: "0660"        # octal permissions of the socket file
  group: ""           # group owning the socket file; "" = the daemon's group
state_dir: ""         # "" = $XDG_STATE_HOME/heygem (user) or /var/lib/heygem (root)
scheduler:
  max_concurrent_jobs: auto # per device: auto = 1 on CPU, 4 on a GPU; or 1..64
  shutdown_timeout: 30s     # on SIGTERM running jobs get this long, then are requeued
retention:
  max_age: 7d               # finished jobs (record, spool, log) are removed after this
  max_bytes: 20G            # spool size bound; the oldest finished jobs go first
  cleanup_interval: 10m
limits:
  max_input_bytes: 4G       # per input file copied into the spool
  max_items: 256            # videos per job
  max_connections: 256
  max_connections_per_uid: 64   # connections one uid may hold; more are refused with an error
  max_pending_fds_per_uid: 256  # fds one uid's unfinished frames may hold
  fd_reserve: 256           # fds kept out of the clients' reach for running jobs
  request_timeout: 10s      # a new connection must complete its first request (hello) within this
  frame_timeout: 30s        # a frame, once begun, must be complete within this
  input_copy_timeout: 10m   # copying one job's inputs into the spool
  max_queued_jobs: 1024     # jobs waiting in the queue, all uids
  max_queued_jobs_per_uid: 128
avatar_cache:
  directory: ""             # "" = $CACHE_DIRECTORY/avatar-cache (systemd), else <state_dir>/avatar-cache
  max_bytes: 64M            # face boxes of videos seen before; least recently used go first; 0 = off
cluster:                    # Redis Streams cluster mode (docs/cluster.md); off while address is ""
  address: ""               # redis://HOST[:PORT] or unix:/PATH
  user: ""                  # Redis ACL user; "" = the one in address, else the default user
  password_file: ""         # a file whose first line is the password (never the password here)
  stream: "heygem:jobs"     # jobs stream; per-job keys are <stream>:job:<id>
  group: heygem             # consumer group of the workers
  dead_letter_stream: "heygem:dead"
  consumer: ""              # this worker's name in the group; "" = the host name
  claim_idle: 60s           # a worker silent this long loses its jobs to another (XAUTOCLAIM)
  max_attempts: 3           # runs per job, then the dead-letter stream with the last error
  media_roots: []           # folders every box mounts; inputs and outputs must lie under one
  max_inline_bytes: 16M     # bound of an input carried inline in Redis
  events_maxlen: 1000       # entries kept per job's events stream
  retention: 7d             # finished jobs' keys expire after this
logging:
  level: info               # trace, debug, info, warn, error, critical, off
models:
  directory: ""             # relative weights resolve here; "" = <state_dir>/models, then ../shared/models
  default_generator: wav2lip
  default_detector: retinaface
  default_restorer: ""      # the gfpgan model of --enhance; "" = the only gfpgan entry
  default_enhance: false    # restore faces (GFPGAN) in jobs that say neither --enhance nor --no-enhance
  heartbeat_interval: 300s
  memory_budget: unlimited  # per device, e.g. 8G
  batch_wait: 2ms           # the longest a forward waits for another item's tasks to join it
  max_batch: 512            # rows (faces, frames) per forward batched across items
  warm_pipeline: true       # before ready: one short synthetic item per device through the whole pipeline
  device: auto              # entries' default: auto (cuda:0 if there is a GPU, else cpu), all, cpu, cpu:N, cuda:N or a list
  entries:
    - name: wav2lip
      kind: wav2lip
      weights: ""           # "" = the untrained hash-init generator (clearly labelled)
      precision: float32
      preload: true
      keep_alive: forever   # forever | 0 | a duration such as 30m
    - name: retinaface
      kind: retinaface
      weights: retinaface_mobilenet0.25.pth
      precision: float32
      preload: true
      keep_alive: forever
)";

// A config error with the place it comes from.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& why) const {
    throw Error(ErrorCode::invalid_argument, where(node) + ": key " + key + ": " + why);
  }

  // "<source>: line N" of a node (just the source when the node has no place).
  std::string where(const YAML::Node& node) const {
    const auto mark = node.Mark();
    return mark.is_null() ? source_ : source_ + ": line " + std::to_string(mark.line + 1);
  }

  // Calls `handler(child_key, child_node)` for every key, rejecting keys not in `allowed`.
  void for_each_key(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed,
                    const std::function<void(const std::string&, const YAML::Node&)>& handler) const {
    if (map.IsNull()) return;
    if (!map.IsMap()) fail(map, path.empty() ? "(top level)" : path, "expected a mapping");
    for (const auto& entry : map) {
      // A complex key ("? [a]: b") is no name; as<std::string>() would throw a YAML exception.
      if (!entry.first.IsScalar()) fail(entry.first, path.empty() ? "(top level)" : path, "keys must be plain names");
      const auto name = entry.first.as<std::string>();
      const auto full = path.empty() ? name : path + "." + name;
      if (!allowed.count(name)) {
        std::string known;
        for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
        fail(entry.first, full, "unknown key (known: " + known + ")");
      }
      handler(full, entry.second);
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (node.IsNull()) return "";
    if (!node.IsScalar()) fail(node, key, "expected a single value");
    return node.Scalar();
  }

  long long integer(const YAML::Node& node, const std::string& key, long long low, long long high) const {
    const auto text = scalar(node, key);
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0) fail(node, key, "expected an integer, got \"" + text + "\"");
    if (value < low || value > high)
      fail(node, key, "must be between " + std::to_string(low) + " and " + std::to_string(high));
    return value;
  }

  bool boolean(const YAML::Node& node, const std::string& key) const {
    const auto text = scalar(node, key);
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    fail(node, key, "expected true or false, got \"" + text + "\"");
  }

  std::chrono::milliseconds duration(const YAML::Node& node, const std::string& key) const {
    const auto text = scalar(node, key);
    const auto value = parse_duration(text);
    if (!value) fail(node, key, "expected a duration such as 30s, 5m, 2h or 7d, got \"" + text + "\"");
    return *value;
  }

  std::uint64_t bytes(const YAML::Node& node, const std::string& key) const {
    const auto text = scalar(node, key);
    const auto value = parse_bytes(text);
    if (!value) fail(node, key, "expected a size such as 512M or 20G, got \"" + text + "\"");
    return *value;
  }

 private:
  std::string source_;
};

residency::ModelKind parse_kind(const Reader& r, const YAML::Node& node, const std::string& key) {
  const auto text = r.scalar(node, key);
  if (text == "wav2lip") return residency::ModelKind::wav2lip;
  if (text == "s3fd") return residency::ModelKind::s3fd;
  if (text == "retinaface") return residency::ModelKind::retinaface;
  if (text == "gfpgan") return residency::ModelKind::gfpgan;
  r.fail(node, key, "expected wav2lip, s3fd, retinaface or gfpgan, got \"" + text + "\"");
}

// One device as written: auto, all, cpu, cpu:N, cuda or cuda:N (canonical: "cuda" is cuda:0 and
// "cpu:0" is cpu). Whether this machine has it is validate_config's check.
std::string parse_device(const Reader& r, const YAML::Node& node, const std::string& key) {
  std::string text = r.scalar(node, key);
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text == "auto" || text == "all" || text == "cpu") return text;
  if (text == "cuda") return "cuda:0";
  for (const std::string prefix : {"cpu:", "cuda:"}) {
    if (text.rfind(prefix, 0) != 0 || text.size() == prefix.size() || text.size() > prefix.size() + 3 ||
        !std::all_of(text.begin() + static_cast<long>(prefix.size()), text.end(), [](unsigned char c) { return std::isdigit(c); }))
      continue;
    const int index = std::stoi(text.substr(prefix.size()));
    if (index > 127) break;
    return prefix == "cpu:" && index == 0 ? "cpu" : prefix + std::to_string(index);
  }
  r.fail(node, key, "expected auto, all, cpu, cpu:N, cuda or cuda:N, got \"" + r.scalar(node, key) + "\"");
}

// scheduler.max_concurrent_jobs: 1..64, or auto (0; the scheduler picks per device type).
int max_concurrent_jobs(const Reader& r, const YAML::Node& node, const std::string& key) {
  if (node.IsScalar() && node.Scalar() == "auto") return 0;
  if (node.IsScalar() && !node.Scalar().empty() && !std::isdigit(static_cast<unsigned char>(node.Scalar()[0])))
    r.fail(node, key, "expected auto or a number of jobs 1..64, got \"" + node.Scalar() + "\"");
  return static_cast<int>(r.integer(node, key, 1, 64));
}

// `device:` / `devices:` (and models.device): one device, auto, all, or a list of devices, each
// one replica of the model ("cpu:1" is a second CPU replica with its own copy of the weights).
std::vector<std::string> parse_devices(const Reader& r, const YAML::Node& node, const std::string& key) {
  if (!node.IsSequence()) return {parse_device(r, node, key)};
  if (node.size() == 0) r.fail(node, key, "expected at least one device");
  std::vector<std::string> devices;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const auto item_key = key + "[" + std::to_string(i) + "]";
    auto device = parse_device(r, node[i], item_key);
    if (device == "auto" || device == "all") r.fail(node[i], item_key, device + " stands alone, not in a list");
    if (std::find(devices.begin(), devices.end(), device) != devices.end())
      r.fail(node[i], item_key, "device " + device + " is listed twice (one replica per device)");
    devices.push_back(std::move(device));
  }
  return devices;
}

// spec.devices stays empty when the entry names none: models.device fills it after the merge.
residency::ModelSpec parse_model_entry(const Reader& r, const YAML::Node& node, const std::string& path) {
  residency::ModelSpec spec;
  spec.devices.clear();
  bool has_name = false, has_kind = false, has_device = false;
  r.for_each_key(node, path, {"name", "kind", "weights", "device", "devices", "precision", "preload", "keep_alive"},
                 [&](const std::string& key, const YAML::Node& value) {
                   const auto leaf = key.substr(key.rfind('.') + 1);
                   if (leaf == "name") {
                     spec.name = r.scalar(value, key);
                     if (spec.name.empty()) r.fail(value, key, "must not be empty");
                     has_name = true;
                   } else if (leaf == "kind") {
                     spec.kind = parse_kind(r, value, key);
                     has_kind = true;
                   } else if (leaf == "weights") {
                     spec.weights = r.scalar(value, key);
                   } else if (leaf == "device" || leaf == "devices") {
                     if (has_device) r.fail(value, key, "give device or devices, not both");
                     has_device = true;
                     spec.devices = parse_devices(r, value, key);
                   } else if (leaf == "precision") {
                     spec.precision = r.scalar(value, key);
                     static const std::set<std::string> known{"float32", "fp32", "float16", "fp16", "bfloat16", "bf16"};
                     if (!known.count(spec.precision))
                       r.fail(value, key, "expected float32, float16 or bfloat16, got \"" + spec.precision + "\"");
                   } else if (leaf == "preload") {
                     spec.preload = r.boolean(value, key);
                   } else if (leaf == "keep_alive") {
                     const auto text = r.scalar(value, key);
                     if (text == "forever") spec.keep_alive.reset();
                     else spec.keep_alive = r.duration(value, key);
                   }
                 });
  if (!node.IsMap()) r.fail(node, path, "expected a mapping with name and kind");
  spec.origin = r.where(node) + ": " + path;
  if (!has_name) r.fail(node, path + ".name", "missing");
  if (!has_kind) r.fail(node, path + ".kind", "missing");
  return spec;
}

// Where a reference to a model name was written, for the cross-checks after merging.
struct NameRef {
  std::string value;
  YAML::Node node;
  std::string key;
  const Reader* reader = nullptr;
};

struct ModelsSection {
  NameRef default_generator, default_detector, default_restorer;
  NameRef default_enhance;
  YAML::Node entries_node;
  std::vector<std::string> default_devices{"auto"};  // models.device
};

void apply_models(const Reader& r, const YAML::Node& node, DaemonConfig& config, ModelsSection& refs) {
  r.for_each_key(node, "models",
                 {"directory", "default_generator", "default_detector", "default_restorer", "default_enhance",
                  "heartbeat_interval", "memory_budget", "batch_wait", "max_batch", "warm_pipeline", "device",
                  "entries"},
                 [&](const std::string& key, const YAML::Node& value) {
                   if (key == "models.directory") {
                     config.models_directory = r.scalar(value, key);
                   } else if (key == "models.default_generator") {
                     refs.default_generator = {r.scalar(value, key), value, key, &r};
                   } else if (key == "models.default_detector") {
                     refs.default_detector = {r.scalar(value, key), value, key, &r};
                   } else if (key == "models.default_restorer") {
                     refs.default_restorer = {r.scalar(value, key), value, key, &r};
                   } else if (key == "models.default_enhance") {
                     config.residency.default_enhance = r.boolean(value, key);
                     refs.default_enhance = {"", value, key, &r};
                   } else if (key == "models.heartbeat_interval") {
                     config.residency.heartbeat_interval = r.duration(value, key);
                     if (config.residency.heartbeat_interval.count() <= 0) r.fail(value, key, "must be positive");
                   } else if (key == "models.memory_budget") {
                     const auto text = r.scalar(value, key);
                     if (text == "unlimited" || text.empty()) config.residency.memory_budget_bytes.reset();
                     else config.residency.memory_budget_bytes = r.bytes(value, key);
                   } else if (key == "models.batch_wait") {
                     config.residency.batching.max_wait = r.duration(value, key);
                     if (config.residency.batching.max_wait.count() < 0) r.fail(value, key, "must not be negative");
                   } else if (key == "models.max_batch") {
                     const auto text = r.scalar(value, key);
                     try {
                       std::size_t used = 0;
                       config.residency.batching.max_rows = std::stoll(text, &used);
                       if (used != text.size() || config.residency.batching.max_rows < 1) throw std::invalid_argument(text);
                     } catch (const std::exception&) {
                       r.fail(value, key, "expected a whole number of rows, 1 or more, got \"" + text + "\"");
                     }
                   } else if (key == "models.warm_pipeline") {
                     config.residency.warm_pipeline = r.boolean(value, key);
                   } else if (key == "models.device") {
                     refs.default_devices = parse_devices(r, value, key);
                   } else if (key == "models.entries") {
                     if (!value.IsSequence() || value.size() == 0) r.fail(value, key, "expected a non-empty list of models");
                     std::vector<residency::ModelSpec> models;
                     std::set<std::string> names;
                     for (std::size_t i = 0; i < value.size(); ++i) {
                       const auto path = key + "[" + std::to_string(i) + "]";
                       auto spec = parse_model_entry(r, value[i], path);
                       if (!names.insert(spec.name).second) r.fail(value[i], path + ".name", "duplicate name \"" + spec.name + "\"");
                       models.push_back(std::move(spec));
                     }
                     config.residency.models = std::move(models);
                     refs.entries_node = value;
                   }
                 });
}

// A Redis key or group name: printable, no spaces (it goes into commands and logs as it is).
std::string redis_name(const Reader& r, const YAML::Node& node, const std::string& key) {
  const auto text = r.scalar(node, key);
  if (text.empty() || text.size() > 200 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return c > 32 && c < 127; }))
    r.fail(node, key, "expected 1..200 printable characters without spaces, got \"" + text + "\"");
  return text;
}

void apply_cluster(const Reader& r, const YAML::Node& node, cluster::ClusterConfig& cluster) {
  if (node.IsMap() && node["password"])
    r.fail(node["password"], "cluster.password", "the password never goes into the YAML: name a file holding it in cluster.password_file");
  r.for_each_key(node, "cluster",
                 {"address", "user", "password_file", "stream", "group", "dead_letter_stream", "consumer", "claim_idle",
                  "max_attempts", "media_roots", "max_inline_bytes", "events_maxlen", "retention"},
                 [&](const std::string& key, const YAML::Node& value) {
                   if (key == "cluster.address") {
                     cluster.address = r.scalar(value, key);
                     if (!cluster.address.empty()) {
                       try {
                         (void)cluster::parse_redis_address(cluster.address);
                       } catch (const Error& e) {
                         r.fail(value, key, e.what());
                       }
                     }
                   } else if (key == "cluster.user") {
                     cluster.user = r.scalar(value, key);
                   } else if (key == "cluster.password_file") {
                     cluster.password_file = r.scalar(value, key);
                   } else if (key == "cluster.stream") {
                     cluster.stream = redis_name(r, value, key);
                   } else if (key == "cluster.group") {
                     cluster.group = redis_name(r, value, key);
                   } else if (key == "cluster.dead_letter_stream") {
                     cluster.dead_letter_stream = redis_name(r, value, key);
                   } else if (key == "cluster.consumer") {
                     cluster.consumer = r.scalar(value, key);
                     if (!cluster.consumer.empty()) cluster.consumer = redis_name(r, value, key);
                   } else if (key == "cluster.claim_idle") {
                     cluster.claim_idle = r.duration(value, key);
                     if (cluster.claim_idle < std::chrono::milliseconds(500)) r.fail(value, key, "must be at least 500ms");
                   } else if (key == "cluster.max_attempts") {
                     cluster.max_attempts = static_cast<int>(r.integer(value, key, 1, 100));
                   } else if (key == "cluster.media_roots") {
                     if (!value.IsSequence()) r.fail(value, key, "expected a list of absolute folders");
                     cluster.media_roots.clear();
                     for (std::size_t i = 0; i < value.size(); ++i) {
                       const auto item = key + "[" + std::to_string(i) + "]";
                       const std::filesystem::path root = r.scalar(value[i], item);
                       if (!root.is_absolute()) r.fail(value[i], item, "expected an absolute folder, got \"" + root.string() + "\"");
                       cluster.media_roots.push_back(root.lexically_normal());
                     }
                   } else if (key == "cluster.max_inline_bytes") {
                     cluster.max_inline_bytes = r.bytes(value, key);
                     if (cluster.max_inline_bytes > (512ULL << 20)) r.fail(value, key, "at most 512M (Redis' string limit)");
                   } else if (key == "cluster.events_maxlen") {
                     cluster.events_maxlen = static_cast<int>(r.integer(value, key, 10, 1000000));
                   } else if (key == "cluster.retention") {
                     cluster.retention = r.duration(value, key);
                     if (cluster.retention < std::chrono::seconds(1)) r.fail(value, key, "must be at least 1s");
                   }
                 });
  if (cluster.enabled() && cluster.media_roots.empty() && node.IsMap())
    r.fail(node, "cluster.media_roots", "at least one folder is needed when cluster.address is set");
  // The ACL user may come in the address (redis://USER@HOST, as heygemctl --cluster takes it) or in
  // cluster.user; the worker uses whichever is given, and two different ones are a mistake.
  if (cluster.enabled() && node.IsMap()) {
    const auto in_address = cluster::parse_redis_address(cluster.address).user;
    if (!in_address.empty() && !cluster.user.empty() && in_address != cluster.user)
      r.fail(node["user"], "cluster.user",
             "\"" + cluster.user + "\" differs from the user in cluster.address (\"" + in_address + "\"): give one");
  }
}

void check_model_reference(const DaemonConfig& config, const NameRef& ref, residency::ModelRole role) {
  if (ref.value.empty()) return;  // none: jobs must name one (or, for the detector, give --box)
  const Reader& r = *ref.reader;
  static const char* const kRoleText[] = {"generator", "face detector", "face restorer (kind gfpgan)"};
  for (const auto& spec : config.residency.models) {
    if (spec.name != ref.value) continue;
    const auto kind_role = spec.kind == residency::ModelKind::wav2lip  ? residency::ModelRole::generator
                           : spec.kind == residency::ModelKind::gfpgan ? residency::ModelRole::restorer
                                                                       : residency::ModelRole::detector;
    if (kind_role != role)
      r.fail(ref.node, ref.key, "\"" + ref.value + "\" is not a " + kRoleText[static_cast<int>(role)]);
    return;
  }
  r.fail(ref.node, ref.key, "no model named \"" + ref.value + "\" in models.entries");
}

void apply(const Reader& r, const YAML::Node& root, DaemonConfig& config, ModelsSection& models) {
  r.for_each_key(root, "", {"socket", "state_dir", "scheduler", "retention", "limits", "avatar_cache", "cluster", "logging", "models"},
                 [&](const std::string& key, const YAML::Node& value) {
                   if (key == "socket") {
                     r.for_each_key(value, key, {"path", "mode", "group"}, [&](const std::string& k, const YAML::Node& v) {
                       if (k == "socket.path") {
                         config.socket.path = r.scalar(v, k);
                       } else if (k == "socket.mode") {
                         const auto text = r.scalar(v, k);
                         char* end = nullptr;
                         const long mode = std::strtol(text.c_str(), &end, 8);
                         if (text.empty() || *end != '\0' || mode < 0 || mode > 0777)
                           r.fail(v, k, "expected octal permissions such as \"0660\", got \"" + text + "\"");
                         if ((mode & 0600) != 0600) r.fail(v, k, "the owner needs read and write access");
                         config.socket.mode = static_cast<mode_t>(mode);
                       } else {
                         config.socket.group = r.scalar(v, k);
                       }
                     });
                   } else if (key == "state_dir") {
                     config.state_dir = r.scalar(value, key);
                   } else if (key == "scheduler") {
                     r.for_each_key(value, key, {"max_concurrent_jobs", "shutdown_timeout"},
                                    [&](const std::string& k, const YAML::Node& v) {
                                      if (k == "scheduler.max_concurrent_jobs")
                                        config.scheduler.max_concurrent_jobs = max_concurrent_jobs(r, v, k);
                                      else
                                        config.scheduler.shutdown_timeout = r.duration(v, k);
                                    });
                   } else if (key == "retention") {
                     r.for_each_key(value, key, {"max_age", "max_bytes", "cleanup_interval"},
                                    [&](const std::string& k, const YAML::Node& v) {
                                      if (k == "retention.max_age") {
                                        config.retention.max_age = r.duration(v, k);
                                      } else if (k == "retention.max_bytes") {
                                        config.retention.max_bytes = r.bytes(v, k);
                                      } else {
                                        config.retention.cleanup_interval = r.duration(v, k);
                                        if (config.retention.cleanup_interval.count() <= 0) r.fail(v, k, "must be positive");
                                      }
                                    });
                   } else if (key == "limits") {
                     r.for_each_key(value, key,
                                    {"max_input_bytes", "max_items", "max_connections", "max_connections_per_uid",
                                     "max_pending_fds_per_uid", "fd_reserve", "request_timeout", "frame_timeout",
                                     "input_copy_timeout", "max_queued_jobs", "max_queued_jobs_per_uid"},
                                    [&](const std::string& k, const YAML::Node& v) {
                                      auto& limits = config.limits;
                                      const auto positive_duration = [&] {
                                        const auto value = r.duration(v, k);
                                        if (value.count() <= 0) r.fail(v, k, "must be longer than 0");
                                        return value;
                                      };
                                      if (k == "limits.max_input_bytes")
                                        limits.max_input_bytes = r.bytes(v, k);
                                      else if (k == "limits.max_items")
                                        limits.max_items = static_cast<int>(r.integer(v, k, 1, 100000));
                                      else if (k == "limits.max_connections")
                                        limits.max_connections = static_cast<int>(r.integer(v, k, 1, 100000));
                                      else if (k == "limits.max_connections_per_uid")
                                        limits.max_connections_per_uid = static_cast<int>(r.integer(v, k, 1, 100000));
                                      else if (k == "limits.max_pending_fds_per_uid")
                                        limits.max_pending_fds_per_uid = static_cast<int>(r.integer(v, k, 129, 1000000));
                                      else if (k == "limits.fd_reserve")
                                        limits.fd_reserve = static_cast<int>(r.integer(v, k, 16, 1000000));
                                      else if (k == "limits.request_timeout")
                                        limits.request_timeout = positive_duration();
                                      else if (k == "limits.frame_timeout")
                                        limits.frame_timeout = positive_duration();
                                      else if (k == "limits.input_copy_timeout")
                                        limits.input_copy_timeout = positive_duration();
                                      else if (k == "limits.max_queued_jobs")
                                        limits.max_queued_jobs = static_cast<int>(r.integer(v, k, 1, 1000000));
                                      else
                                        limits.max_queued_jobs_per_uid = static_cast<int>(r.integer(v, k, 1, 1000000));
                                    });
                   } else if (key == "avatar_cache") {
                     r.for_each_key(value, key, {"directory", "max_bytes"}, [&](const std::string& k, const YAML::Node& v) {
                       if (k == "avatar_cache.directory")
                         config.avatar_cache.directory = r.scalar(v, k);
                       else
                         config.avatar_cache.max_bytes = r.bytes(v, k);
                     });
                   } else if (key == "cluster") {
                     apply_cluster(r, value, config.cluster);
                   } else if (key == "logging") {
                     r.for_each_key(value, key, {"level"}, [&](const std::string& k, const YAML::Node& v) {
                       static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
                       config.logging.level = r.scalar(v, k);
                       if (!levels.count(config.logging.level))
                         r.fail(v, k, "expected trace, debug, info, warn, error, critical or off");
                     });
                   } else if (key == "models") {
                     apply_models(r, value, config, models);
                   }
                 });
}

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    const std::string where = e.mark.is_null() ? source : source + ": line " + std::to_string(e.mark.line + 1);
    throw Error(ErrorCode::invalid_argument, where + ": invalid YAML: " + e.msg);
  }
}

std::optional<double> leading_number(const std::string& text, std::string& unit) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!std::isfinite(value) || value < 0 || text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])))
    return std::nullopt;
  unit = text.substr(used);
  return value;
}

}  // namespace

const std::string& embedded_defaults() { return kDefaults; }

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::string unit;
  const auto value = leading_number(text, unit);
  if (!value) return std::nullopt;
  static const std::map<std::string, double> scale{{"", 1000},      {"ms", 1},         {"s", 1000},
                                                   {"m", 60'000},   {"h", 3'600'000},  {"d", 86'400'000}};
  const auto it = scale.find(unit);
  if (it == scale.end()) return std::nullopt;
  const double ms = *value * it->second;
  if (ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

std::optional<std::uint64_t> parse_bytes(const std::string& text) {
  std::string unit;
  const auto value = leading_number(text, unit);
  if (!value) return std::nullopt;
  if (unit.size() == 3 && unit.substr(1) == "iB") unit = unit.substr(0, 1);
  else if (unit.size() == 2 && unit[1] == 'B') unit = unit.substr(0, 1);
  static const std::map<std::string, double> scale{{"", 1}, {"B", 1}, {"K", 1024.0}, {"M", 1024.0 * 1024},
                                                   {"G", 1024.0 * 1024 * 1024}, {"T", 1024.0 * 1024 * 1024 * 1024}};
  const auto it = scale.find(unit);
  if (it == scale.end()) return std::nullopt;
  const double bytes = *value * it->second;
  if (bytes > 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

DaemonConfig parse_config(const std::string& text, const std::string& source) {
  DaemonConfig config;
  ModelsSection models;
  const Reader defaults_reader("embedded defaults");
  apply(defaults_reader, load_yaml(kDefaults, "embedded defaults"), config, models);
  const Reader reader(source);
  apply(reader, load_yaml(text, source), config, models);
  // The default names were last written either by the defaults or by the file; errors point there.
  check_model_reference(config, models.default_generator, residency::ModelRole::generator);
  check_model_reference(config, models.default_detector, residency::ModelRole::detector);
  if (!models.default_restorer.value.empty())
    check_model_reference(config, models.default_restorer, residency::ModelRole::restorer);
  config.residency.default_generator = models.default_generator.value;
  config.residency.default_detector = models.default_detector.value;
  config.residency.default_restorer = models.default_restorer.value;
  if (config.residency.default_enhance) {
    const auto& specs = config.residency.models;
    std::size_t restorers = 0;
    for (const auto& spec : specs) restorers += spec.kind == residency::ModelKind::gfpgan;
    if (restorers == 0)
      models.default_enhance.reader->fail(models.default_enhance.node, models.default_enhance.key,
                                          "true needs a models.entries item of kind gfpgan with weights "
                                          "GFPGANv1.4.pth (TencentARC/GFPGAN release v1.3.0)");
    if (restorers > 1 && config.residency.default_restorer.empty())
      models.default_enhance.reader->fail(models.default_enhance.node, models.default_enhance.key,
                                          "true with several gfpgan models needs models.default_restorer");
  }
  for (auto& spec : config.residency.models)
    if (spec.devices.empty()) spec.devices = models.default_devices;
  return config;
}

DaemonConfig default_config() { return parse_config("", "embedded defaults"); }

DaemonConfig load_config_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::invalid_argument, "config " + file.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file.string());
}

void resolve_paths(DaemonConfig& config, uid_t uid) {
  if (config.socket.path.empty()) {
    auto environment = SocketEnvironment::current();
    environment.heygem_socket.clear();  // the daemon's --socket / HEYGEM_SOCKET are applied by the caller
    environment.uid = uid;
    config.socket.path = default_socket_path(environment);
  }
  if (config.state_dir.empty()) config.state_dir = default_state_dir(uid);
  if (config.avatar_cache.directory.empty()) {
    const char* cache = std::getenv("CACHE_DIRECTORY");  // systemd: the first of CacheDirectory='s
    const std::string first = cache ? std::string(cache).substr(0, std::string(cache).find(':')) : "";
    config.avatar_cache.directory = (first.empty() ? config.state_dir : std::filesystem::path(first)) / "avatar-cache";
  }
  const auto directory = config.models_directory.empty() ? config.state_dir / "models" : config.models_directory;
  const std::filesystem::path fallback = std::filesystem::path("..") / "shared" / "models";
  for (auto& spec : config.residency.models) {
    if (spec.weights.empty() || spec.weights.is_absolute()) continue;
    auto primary = directory / spec.weights;
    std::error_code ec;
    if (!std::filesystem::exists(primary, ec) && std::filesystem::exists(fallback / spec.weights, ec)) {
      const auto found = std::filesystem::weakly_canonical(std::filesystem::absolute(fallback / spec.weights, ec), ec);
      config.notes.push_back("model " + spec.name + ": " + primary.string() + " not found, using " + found.string());
      spec.weights = found;
    } else {
      spec.weights = std::move(primary);
    }
  }
}

std::filesystem::path default_state_dir(uid_t uid) {
  if (uid != 0) {
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
      return std::filesystem::path(state) / "heygem";
    if (const char* home = std::getenv("HOME"); home && *home)
      return std::filesystem::path(home) / ".local" / "state" / "heygem";
  }
  return "/var/lib/heygem";
}

}  // namespace heygem::config
