#include "daemon/pipeline/item_options.hpp"

#include <nlohmann/json.hpp>

#include <set>

#include "common/errors.hpp"

namespace heygem::pipeline {
namespace {

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, "option " + key + ": " + why);
}

template <typename T>
T get(const nlohmann::json& value, const std::string& key, const char* expected) {
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception&) {
    bad(key, std::string("expected ") + expected + ", got " + value.dump());
  }
}

int bounded_int(const nlohmann::json& value, const std::string& key, int low, int high) {
  if (!value.is_number_integer()) bad(key, "expected an integer, got " + value.dump());
  const auto v = value.get<int64_t>();
  if (v < low || v > high) bad(key, "must be between " + std::to_string(low) + " and " + std::to_string(high));
  return static_cast<int>(v);
}

FaceBox parse_box(const nlohmann::json& value) {
  if (!value.is_array() || value.size() != 4) bad("box", "expected [top, bottom, left, right]");
  std::array<int, 4> v{};
  for (size_t i = 0; i < 4; ++i) v[i] = bounded_int(value[i], "box", 0, 1 << 16);
  FaceBox box{v[0], v[1], v[2], v[3]};
  if (box.top >= box.bottom || box.left >= box.right) bad("box", "needs top < bottom and left < right");
  return box;
}

Pads parse_pads(const nlohmann::json& value) {
  if (!value.is_array() || value.size() != 4) bad("pads", "expected [top, bottom, left, right]");
  return Pads{bounded_int(value[0], "pads", 0, 4096), bounded_int(value[1], "pads", 0, 4096),
              bounded_int(value[2], "pads", 0, 4096), bounded_int(value[3], "pads", 0, 4096)};
}

const std::set<std::string> kPresets{"ultrafast", "superfast", "veryfast", "faster", "fast",
                                     "medium",    "slow",      "slower",   "veryslow"};

}  // namespace

ItemOptions parse_item_options(const nlohmann::json& options) {
  ItemOptions out;
  if (options.is_null()) return out;
  if (!options.is_object()) bad("options", "expected an object");
  for (const auto& [key, value] : options.items()) {
    if (key == "blend") {
      out.blend = parse_blend_mode(get<std::string>(value, key, "a string"));
    } else if (key == "strict") {
      out.strict = get<bool>(value, key, "true or false");
    } else if (key == "loop") {
      out.loop = parse_loop_mode(get<std::string>(value, key, "a string"));
    } else if (key == "length") {
      out.length = parse_output_length(get<std::string>(value, key, "a string"));
    } else if (key == "fps") {
      if (value.is_null()) continue;
      const double fps = get<double>(value, key, "a number");
      if (!(fps > 0 && fps <= 240)) bad(key, "must be in (0, 240]");
      out.fps = fps;
    } else if (key == "still_fps") {
      const double fps = get<double>(value, key, "a number");
      if (!(fps > 0 && fps <= 240)) bad(key, "must be in (0, 240]");
      out.still_fps = fps;
    } else if (key == "box") {
      if (!value.is_null()) out.box = parse_box(value);
    } else if (key == "nosmooth") {
      out.smooth = !get<bool>(value, key, "true or false");
    } else if (key == "pads") {
      out.pads = parse_pads(value);
    } else if (key == "generator_batch") {
      out.generator_batch = bounded_int(value, key, 1, 1024);
    } else if (key == "detector_batch") {
      out.detector_batch = bounded_int(value, key, 1, 1024);
    } else if (key == "generator") {
      out.generator = get<std::string>(value, key, "a model name");
    } else if (key == "detector") {
      out.detector = get<std::string>(value, key, "a model name");
    } else if (key == "enhance") {
      if (!value.is_null()) out.enhance = get<bool>(value, key, "true or false");
    } else if (key == "silence_gate") {
      out.silence_gate.enabled = get<bool>(value, key, "true or false");
    } else if (key == "avatar_cache") {
      out.avatar_cache = get<bool>(value, key, "true or false");
    } else if (key == "crf") {
      out.encode.crf = bounded_int(value, key, 0, 51);
    } else if (key == "preset") {
      out.encode.preset = get<std::string>(value, key, "an x264 preset");
      if (!kPresets.count(out.encode.preset)) bad(key, "unknown x264 preset '" + out.encode.preset + "'");
    } else if (key == "lossless") {
      out.encode.lossless = get<bool>(value, key, "true or false");
    } else if (key == "encoder_threads") {
      out.encode.threads = bounded_int(value, key, 0, 256);
    } else {
      bad(key, "unknown option");
    }
  }
  return out;
}

nlohmann::json to_json(const ItemOptions& o) {
  nlohmann::json j = {{"blend", std::string(to_string(o.blend))},
                      {"strict", o.strict},
                      {"loop", std::string(to_string(o.loop))},
                      {"length", std::string(to_string(o.length))},
                      {"still_fps", o.still_fps},
                      {"nosmooth", !o.smooth},
                      {"pads", {o.pads.top, o.pads.bottom, o.pads.left, o.pads.right}},
                      {"crf", o.encode.crf},
                      {"preset", o.encode.preset},
                      {"lossless", o.encode.lossless}};
  if (o.fps) j["fps"] = *o.fps;
  if (o.box) j["box"] = {o.box->top, o.box->bottom, o.box->left, o.box->right};
  if (o.generator_batch) j["generator_batch"] = o.generator_batch;
  if (o.detector_batch) j["detector_batch"] = o.detector_batch;
  if (!o.generator.empty()) j["generator"] = o.generator;
  if (!o.detector.empty()) j["detector"] = o.detector;
  if (o.encode.threads) j["encoder_threads"] = o.encode.threads;
  if (!o.avatar_cache) j["avatar_cache"] = false;
  if (!o.silence_gate.enabled) j["silence_gate"] = false;
  if (o.enhance) j["enhance"] = *o.enhance;
  return j;
}

}  // namespace heygem::pipeline
