// Messages: every type round-trips, and everything malformed is rejected with a message naming the
// field. Path-like fields never get through.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/protocol.hpp"

namespace heygem::protocol {
namespace {

using nlohmann::json;

SubmitRequest sample_submit() {
  SubmitRequest submit;
  submit.audio_name = "speech.wav";
  submit.item_names = {"a.mp4", "b.mp4"};
  submit.output_names = {"a.lipsync.mp4", "b.lipsync.mp4"};
  submit.options.blend = Blend::hard;
  submit.options.loop = Loop::forward;
  submit.options.fps = 25;
  submit.options.box = FaceBoxOption{10, 120, 20, 140};
  submit.options.nosmooth = true;
  submit.options.strict = true;
  submit.options.generator = "wav2lip_gan";
  submit.options.detector = "retinaface";
  submit.options.crf = 20;
  submit.options.preset = "slow";
  submit.options.avatar_cache = false;
  submit.options.silence_gate = false;
  submit.options.enhance = true;
  submit.fds = submit.expected_fds();
  return submit;
}

JobStatus sample_job() {
  JobStatus job;
  job.job_id = "0123456789ab";
  job.uid = 1000;
  job.state = JobState::running;
  job.audio_name = "speech.wav";
  job.model = "wav2lip";
  job.submitted_at_ms = 1700000000000;
  job.started_at_ms = 1700000001000;
  job.attempts = 1;
  job.options = sample_submit().options;
  ItemStatus item;
  item.name = "a.mp4";
  item.output_name = "a.lipsync.mp4";
  item.state = ItemState::running;
  item.stage = "render";
  item.frames_done = 10;
  item.frames_total = 75;
  item.fps = 12.5;
  item.eta_s = 5.2;
  job.items = {item, item};
  job.items[0].avatar_cache = "miss";
  job.items[0].detect_s = 1.25;
  job.items[0].frames_gated = 17;
  job.items[0].device = "cuda:1";
  job.items[1].state = ItemState::pending;
  job.items[1].stage = "";
  return job;
}

std::vector<Request> all_requests() {
  FetchRequest fetch{"0123456789ab", {0, 2}, 2};
  return {HelloRequest{1, "heygemctl test"}, PingRequest{},  VersionRequest{}, sample_submit(),
          StatusRequest{"0123456789ab"},    ListRequest{true}, WatchRequest{"0123456789ab"},
          WaitRequest{"0123456789ab"},      CancelRequest{"0123456789ab"}, fetch,
          LogsRequest{"0123456789ab"},      ModelsRequest{}, ReloadRequest{}};
}

TEST(Protocol, ModelsLoadAndUnloadRoundTripAndNeedAName) {
  for (const ModelsRequest& request : {ModelsRequest{"load", "retinaface"}, ModelsRequest{"unload", "wav2lip"}}) {
    const std::string text = encode(Request{request});
    EXPECT_EQ(encode(parse_request(text)), text);
  }
  EXPECT_THROW(parse_request(R"({"type":"models","action":"load"})"), Error);
  EXPECT_THROW(parse_request(R"({"type":"models","action":"frobnicate","name":"x"})"), Error);
}

std::vector<Response> all_responses() {
  const std::string id = "0123456789ab";
  ModelRow row{"wav2lip", "wav2lip", "cuda:0", "float16", "warm", 1 << 20, 1, 1.5, 0.3, 4.2, 300.0, 2};
  row.heartbeat_at_ms = 1'765'000'000'000;
  row.keep_alive_s = 300;
  row.untrained = true;
  ModelRow cold = row;
  cold.expires_in_s.reset();
  cold.heartbeat_at_ms.reset();
  cold.keep_alive_s.reset();
  ModelsResponse with_memory{{row}, {{"cuda:0", 1 << 20, 2 << 20, 3 << 20}, {"cpu", 5, std::nullopt, std::nullopt}}, 7 << 20,
                             "loaded wav2lip"};
  return {HelloResponse{1, "0.1.0"},
          PongResponse{},
          PongResponse{"loading", "loading models (1/2)"},
          PongResponse{"degraded", "new jobs are refused"},
          VersionResponse{"0.1.0", 1},
          ErrorResponse{ErrorCode::not_found, "no job 0123456789ab"},
          SubmittedResponse{id, 2},
          sample_job(),
          JobEvent{id, QueuedEvent{3}},
          JobEvent{id, LoadingModelEvent{"wav2lip"}},
          JobEvent{id, RunningEvent{1, 2, "render", 30, 75, 24.5, 1.8}},
          JobEvent{id, ItemDoneEvent{1, OutputPlace::fd, 75, 2, 3.1, 24.2}},
          JobEvent{id, ItemDoneEvent{1, OutputPlace::fd, 75, 2, 3.1, 24.2, "hit", 0.0}},
          JobEvent{id, ItemDoneEvent{1, OutputPlace::fd, 75, 2, 3.1, 24.2, "miss", 0.5, "out.mp4", 25.0, 12}},
          JobEvent{id, DoneEvent{{OutputPlace::fd, OutputPlace::spool}, 150, 2, 6.2, 24.2}},
          JobEvent{id, FailedEvent{"a.mp4: no video stream"}},
          JobEvent{id, CancelledEvent{}},
          ListResponse{{sample_job(), sample_job()}},
          ListResponse{{sample_job()}, true},
          ModelsResponse{{row, cold}},
          with_memory,
          LogsResponse{id, "line 1\nline 2\n", true},
          FetchedResponse{id, {{0, 12345}, {2, 999}}},
          ReloadedResponse{"2 models reloaded"}};
}

// Every key anywhere in a message, for the "no path-like field" check.
void collect_keys(const json& value, std::vector<std::string>& keys) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      keys.push_back(key);
      collect_keys(child, keys);
    }
  } else if (value.is_array()) {
    for (const auto& child : value) collect_keys(child, keys);
  }
}

void expect_error(const std::function<void()>& action, ErrorCode code, const std::string& fragment) {
  try {
    action();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), code) << error.what();
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
        << "message '" << error.what() << "' lacks '" << fragment << "'";
  }
}

TEST(Protocol, EveryRequestRoundTrips) {
  const auto requests = all_requests();
  EXPECT_EQ(requests.size(), std::variant_size_v<Request>);
  for (const auto& request : requests) {
    const std::string text = encode(request);
    const Request back = parse_request(text);
    EXPECT_EQ(type_of(back), type_of(request)) << text;
    EXPECT_EQ(encode(back), text);
    EXPECT_TRUE(is_request_type(type_of(request)));
  }
}

TEST(Protocol, EveryResponseRoundTrips) {
  for (const auto& response : all_responses()) {
    const std::string text = encode(response);
    const Response back = parse_response(text);
    EXPECT_EQ(type_of(back), type_of(response)) << text;
    EXPECT_EQ(encode(back), text);
    EXPECT_TRUE(is_response_type(type_of(response)));
  }
}

TEST(Protocol, SubmitKeepsEveryOption) {
  const SubmitRequest submit = sample_submit();
  const auto back = std::get<SubmitRequest>(parse_request(encode(Request{submit})));
  EXPECT_EQ(back.options, submit.options);
  EXPECT_EQ(back.item_names, submit.item_names);
  EXPECT_EQ(back.output_names, submit.output_names);
  EXPECT_EQ(back.fds, 5);
  EXPECT_EQ(expected_fds(Request{back}), 5u);
}

TEST(Protocol, NameTableCoversEveryType) {
  for (const auto& response : all_responses()) {
    const auto name = to_string(type_of(response));
    EXPECT_EQ(message_type_from_string(name), type_of(response));
  }
  EXPECT_FALSE(message_type_from_string("shutdown").has_value());
}

TEST(Protocol, NoMessageHasAPathLikeKey) {
  std::vector<std::string> keys;
  for (const auto& request : all_requests()) collect_keys(to_json(request), keys);
  for (const auto& response : all_responses()) collect_keys(to_json(response), keys);
  ASSERT_FALSE(keys.empty());
  for (const auto& key : keys) EXPECT_FALSE(is_path_like_key(key)) << key;
}

TEST(Protocol, PathLikeFieldsAreRejected) {
  for (const std::string key : {"path", "file", "output_path", "audio_file", "video_path", "dir", "outputDir"}) {
    json submit = to_json(Request{sample_submit()});
    submit[key] = "/etc/shadow";
    expect_error([&] { request_from_json(submit); }, ErrorCode::protocol, "submit." + key + ": path-like");

    json nested = to_json(Request{sample_submit()});
    nested["options"][key] = "/etc/shadow";
    expect_error([&] { request_from_json(nested); }, ErrorCode::protocol, "submit.options." + key + ": path-like");

    json fetch = to_json(Request{FetchRequest{"0123456789ab", {0}, 1}});
    fetch[key] = "/tmp/out.mp4";
    expect_error([&] { request_from_json(fetch); }, ErrorCode::protocol, "path-like");
  }
}

TEST(Protocol, NamesThatArePathsAreRejected) {
  SubmitRequest submit = sample_submit();
  submit.item_names[1] = "../../etc/passwd";
  expect_error([&] { parse_request(encode(Request{submit})); }, ErrorCode::invalid_argument, "submit.item_names[1]");
  submit = sample_submit();
  submit.audio_name = std::string("a\0b", 3);
  expect_error([&] { parse_request(encode(Request{submit})); }, ErrorCode::invalid_argument, "NUL");
  submit = sample_submit();
  submit.output_names[0] = "..";
  expect_error([&] { parse_request(encode(Request{submit})); }, ErrorCode::invalid_argument, "submit.output_names[0]");
}

// Issue 14: names reach terminals and the daemon's log; an ESC or CR in one could forge either.
TEST(Protocol, ControlCharactersInNamesAreRejected) {
  for (const std::string& bad : {std::string("a\x1b]52;c;eA==\x07.wav"), std::string("a\r\nuid 0"), std::string("tab\there"),
                                std::string("del\x7f"), std::string("c1\xc2\x9b" "31m")}) {
    SubmitRequest submit = sample_submit();
    submit.item_names[0] = bad;
    expect_error([&] { parse_request(encode(Request{submit})); }, ErrorCode::invalid_argument, "control character");
  }
  SubmitRequest fine = sample_submit();
  fine.item_names[0] = "caf\xc3\xa9 \xe2\x80\x94 take 2.mp4";  // UTF-8 letters and punctuation stay fine
  EXPECT_NO_THROW(parse_request(encode(Request{fine})));
  expect_error([] { parse_request(encode(Request{HelloRequest{kProtocolVersion, "evil\x1b[2J"}})); },
               ErrorCode::invalid_argument, "hello.client");
  EXPECT_EQ(first_control_character("ok"), std::nullopt);
  EXPECT_EQ(first_control_character("\x1b"), "U+001B");
  EXPECT_EQ(first_control_character("\xc2\x9b"), "U+009B");
}

TEST(Protocol, DuplicateKeysAreRejected) {
  expect_error([] { parse_request(R"({"type":"list","all":false,"all":true})"); }, ErrorCode::protocol,
               "\"all\" appears twice");
  expect_error([] { parse_request(R"({"type":"ping","type":"ping"})"); }, ErrorCode::protocol, "appears twice");
  // The same key in two different objects is no duplicate.
  EXPECT_NO_THROW(parse_request(
      R"({"type":"submit","audio_name":"a","item_names":["v"],"options":{"crf":20},"fds":2})"));
}

TEST(Protocol, UnknownKeysAreRejected) {
  json ping = {{"type", "ping"}, {"verbose", true}};
  expect_error([&] { request_from_json(ping); }, ErrorCode::protocol, "ping.verbose: unknown key");
  json event = to_json(Response{JobEvent{"0123456789ab", QueuedEvent{1}}});
  event["extra"] = 1;
  expect_error([&] { response_from_json(event); }, ErrorCode::protocol, "event.extra: unknown key");
}

TEST(Protocol, WrongTypesNameTheField) {
  json submit = to_json(Request{sample_submit()});
  submit["options"]["crf"] = "high";
  expect_error([&] { request_from_json(submit); }, ErrorCode::protocol, "submit.options.crf: expected an integer");
  submit = to_json(Request{sample_submit()});
  submit["options"]["strict"] = 1;
  expect_error([&] { request_from_json(submit); }, ErrorCode::protocol, "submit.options.strict: expected true or false");
  submit = to_json(Request{sample_submit()});
  submit["item_names"] = "a.mp4";
  expect_error([&] { request_from_json(submit); }, ErrorCode::protocol, "submit.item_names: expected an array");
  json list = {{"type", "list"}, {"all", "yes"}};
  expect_error([&] { request_from_json(list); }, ErrorCode::protocol, "list.all");
  json status = {{"type", "status"}};
  expect_error([&] { request_from_json(status); }, ErrorCode::protocol, "status.job_id: missing");
}

TEST(Protocol, OutOfRangeValuesAreRejected) {
  auto with = [](const char* key, json value) {
    json submit = to_json(Request{sample_submit()});
    submit["options"].erase("lossless");
    submit["options"][key] = std::move(value);
    return submit;
  };
  expect_error([&] { request_from_json(with("crf", 52)); }, ErrorCode::invalid_argument, "submit.options.crf");
  expect_error([&] { request_from_json(with("fps", 0)); }, ErrorCode::invalid_argument, "submit.options.fps");
  expect_error([&] { request_from_json(with("fps", 1e-300)); }, ErrorCode::invalid_argument, "[0.001, 240]");
  expect_error([&] { request_from_json(with("blend", "soft")); }, ErrorCode::invalid_argument, "feather|hard");
  expect_error([&] { request_from_json(with("box", json{5, 5, 0, 10})); }, ErrorCode::invalid_argument, "box");
  expect_error([&] { request_from_json(with("preset", "warp")); }, ErrorCode::invalid_argument, "preset");
  expect_error([&] { request_from_json(with("lossless", true)); }, ErrorCode::invalid_argument, "lossless");
  expect_error([&] { request_from_json(with("generator", "../w")); }, ErrorCode::invalid_argument, "generator");
  json status = {{"type", "status"}, {"job_id", "../../etc"}};
  expect_error([&] { request_from_json(status); }, ErrorCode::invalid_argument, "status.job_id: not a job id");
}

TEST(Protocol, DeclaredFdCountMustMatchTheItems) {
  json submit = to_json(Request{sample_submit()});
  submit["fds"] = 3;
  expect_error([&] { request_from_json(submit); }, ErrorCode::invalid_argument, "submit.fds: declares 3");
  json fetch = {{"type", "fetch"}, {"job_id", "0123456789ab"}, {"items", {0, 0}}, {"fds", 2}};
  expect_error([&] { request_from_json(fetch); }, ErrorCode::invalid_argument, "twice");
}

TEST(Protocol, MalformedPayloadsAreProtocolErrors) {
  expect_error([] { parse_request("{\"type\":\"ping\""); }, ErrorCode::protocol, "not valid JSON");
  expect_error([] { parse_request("[1,2]"); }, ErrorCode::protocol, "not a JSON object");
  expect_error([] { parse_request("\xff\xfe"); }, ErrorCode::protocol, "not valid JSON");
  expect_error([] { parse_request("{\"type\":\"shutdown\"}"); }, ErrorCode::protocol, "unknown message type 'shutdown'");
  expect_error([] { parse_request("{\"kind\":\"ping\"}"); }, ErrorCode::protocol, "type: missing");
  expect_error([] { parse_request("{\"type\":\"pong\"}"); }, ErrorCode::protocol, "not a request");
  expect_error([] { parse_response("{\"type\":\"submit\"}"); }, ErrorCode::protocol, "not a response");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_error([&] { parse_request(deep); }, ErrorCode::protocol, "nests deeper");
}

TEST(Protocol, WrongVersionIsRefusedWithBothVersions) {
  EXPECT_NO_THROW(require_supported_version(kProtocolVersion));
  expect_error([] { require_supported_version(kProtocolVersion + 1); }, ErrorCode::protocol,
               "unsupported protocol version " + std::to_string(kProtocolVersion + 1) + " (daemon speaks " +
                   std::to_string(kProtocolVersion) + ")");
}

TEST(Protocol, TerminalEvents) {
  EXPECT_TRUE(is_terminal(DoneEvent{}));
  EXPECT_TRUE(is_terminal(FailedEvent{}));
  EXPECT_TRUE(is_terminal(CancelledEvent{}));
  EXPECT_FALSE(is_terminal(RunningEvent{}));
  EXPECT_FALSE(is_terminal(QueuedEvent{}));
  EXPECT_EQ(event_name(ItemDoneEvent{}), "item_done");
}

}  // namespace
}  // namespace heygem::protocol
