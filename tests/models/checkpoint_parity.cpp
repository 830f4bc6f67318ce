// The checkpoint reader against shared/fixtures/checkpoints/expected.json (written by torch from
// the same objects) and against the real RetinaFace weights' key list.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "common/errors.hpp"
#include "daemon/models/checkpoint.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::models {
namespace {

using nlohmann::json;

std::filesystem::path checkpoint_fixture(const std::string& file) {
  return test::fixtures_root() / "checkpoints" / file;
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return json::parse(in);
}

const json& expected() {
  static const json kExpected = read_json(checkpoint_fixture("expected.json"));
  return kExpected;
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return std::string("other:") + c10::toString(dtype);
  }
}

// The fixture's encoding of the non-tensor structure: dicts as {"__dict__": [[key, value]...]},
// tuples as {"__tuple__": [...]}, tensors as {"__tensor__": true}.
json describe(const CheckpointObject& object) {
  return std::visit(
      [](const auto& value) -> json {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return nullptr;
        } else if constexpr (std::is_same_v<T, CheckpointList>) {
          json items = json::array();
          for (const auto& item : value) items.push_back(describe(item));
          return items;
        } else if constexpr (std::is_same_v<T, CheckpointTuple>) {
          json items = json::array();
          for (const auto& item : value.items) items.push_back(describe(item));
          return json{{"__tuple__", items}};
        } else if constexpr (std::is_same_v<T, CheckpointDict>) {
          json items = json::array();
          for (const auto& [key, item] : value.items)
            items.push_back(json::array({std::visit([](const auto& k) { return json(k); }, key), describe(item)}));
          return json{{"__dict__", items}};
        } else if constexpr (std::is_same_v<T, at::Tensor>) {
          return json{{"__tensor__", true}};
        } else {
          return value;
        }
      },
      object.value());
}

// Every tensor of the tree by dotted path (list items as "[i]"), in tree order.
void collect_tensors(const CheckpointObject& object, const std::string& path,
                     std::vector<std::pair<std::string, at::Tensor>>& out) {
  const auto join = [&](const std::string& part) { return path.empty() ? part : path + "." + part; };
  if (object.is<at::Tensor>()) {
    out.emplace_back(path, object.as<at::Tensor>());
  } else if (object.is<CheckpointDict>()) {
    for (const auto& [key, item] : object.as<CheckpointDict>().items) {
      const std::string part = std::holds_alternative<std::string>(key) ? std::get<std::string>(key)
                                                                        : std::to_string(std::get<std::int64_t>(key));
      collect_tensors(item, join(part), out);
    }
  } else if (object.is<CheckpointList>()) {
    const auto& list = object.as<CheckpointList>();
    for (std::size_t i = 0; i < list.size(); ++i) collect_tensors(list[i], path + "[" + std::to_string(i) + "]", out);
  } else if (object.is<CheckpointTuple>()) {
    const auto& items = object.as<CheckpointTuple>().items;
    for (std::size_t i = 0; i < items.size(); ++i) collect_tensors(items[i], path + "[" + std::to_string(i) + "]", out);
  }
}

std::vector<std::int64_t> as_vector(at::IntArrayRef values) { return {values.begin(), values.end()}; }

// C-order values of the logical shape, as doubles (exact for every dtype in the fixtures).
std::vector<double> values_of(const at::Tensor& tensor) {
  const at::Tensor flat = tensor.to(at::kDouble).contiguous().reshape({-1});
  return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
}

void expect_tensor(const at::Tensor& tensor, const json& want, bool check_storage = true) {
  const std::string key = want.at("key");
  SCOPED_TRACE(key);
  ASSERT_TRUE(tensor.defined());
  EXPECT_EQ(dtype_name(tensor.scalar_type()), want.at("dtype").get<std::string>());
  EXPECT_EQ(as_vector(tensor.sizes()), want.at("shape").get<std::vector<std::int64_t>>());
  EXPECT_EQ(as_vector(tensor.strides()), want.at("stride").get<std::vector<std::int64_t>>());
  EXPECT_EQ(tensor.storage_offset(), want.at("storage_offset").get<std::int64_t>());
  EXPECT_EQ(tensor.is_contiguous(), want.at("contiguous").get<bool>());
  EXPECT_EQ(tensor.numel(), want.at("numel").get<std::int64_t>());
  if (check_storage) {
    EXPECT_EQ(static_cast<std::int64_t>(tensor.storage().nbytes() / tensor.element_size()),
              want.at("storage_numel").get<std::int64_t>());
  }
  const auto values = values_of(tensor);
  if (want.contains("values")) {
    const auto expected_values = want.at("values").get<std::vector<double>>();
    ASSERT_EQ(values.size(), expected_values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(values[i], expected_values[i]) << "element " << i;
      EXPECT_EQ(std::signbit(values[i]), std::signbit(expected_values[i])) << "sign of element " << i;
    }
  } else {
    const auto first8 = want.at("first8").get<std::vector<double>>();
    ASSERT_GE(values.size(), first8.size());
    for (std::size_t i = 0; i < first8.size(); ++i) EXPECT_EQ(values[i], first8[i]) << "element " << i;
    // The sum is a derived number (its summation order is numpy's), so only its value is checked.
    double sum = 0;
    for (const double value : values) sum += value;
    const double want_sum = want.at("sum").get<double>();
    EXPECT_NEAR(sum, want_sum, 1e-12 * std::max(1.0, std::abs(want_sum)));
  }
}

class PickledCheckpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(PickledCheckpoint, MatchesExpectedTensorsAndStructure) {
  const CheckpointObject checkpoint = read_checkpoint(checkpoint_fixture(GetParam()));
  EXPECT_EQ(describe(checkpoint), expected().at("structure"));

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  collect_tensors(checkpoint, "", tensors);
  const json& want = expected().at("tensors");
  ASSERT_EQ(tensors.size(), want.size());
  std::map<std::string, at::Tensor> by_path(tensors.begin(), tensors.end());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(tensors[i].first, want[i].at("key").get<std::string>()) << "tensor order";
    ASSERT_TRUE(by_path.count(want[i].at("key")));
    const at::Tensor& tensor = by_path.at(want[i].at("key"));
    expect_tensor(tensor, want[i]);
    if (want[i].contains("shares_storage_with")) {
      const at::Tensor& base = by_path.at(want[i].at("shares_storage_with"));
      EXPECT_TRUE(tensor.is_alias_of(base)) << "shares storage with " << want[i].at("shares_storage_with");
    }
  }
  // Only the declared sharing: other tensors have storages of their own.
  for (std::size_t i = 0; i < want.size(); ++i)
    for (std::size_t j = i + 1; j < want.size(); ++j) {
      const auto key_i = want[i].at("key").get<std::string>(), key_j = want[j].at("key").get<std::string>();
      const bool shared = want[j].value("shares_storage_with", std::string()) == key_i ||
                          want[i].value("shares_storage_with", std::string()) == key_j;
      EXPECT_EQ(tensors[i].second.is_alias_of(tensors[j].second), shared) << tensors[i].first << " / " << tensors[j].first;
    }
}

TEST_P(PickledCheckpoint, TopLevelScalarsAndStateDictKeys) {
  const CheckpointObject checkpoint = read_checkpoint(checkpoint_fixture(GetParam()));
  const auto& top = checkpoint.as<CheckpointDict>();
  std::vector<std::string> top_keys;
  for (const auto& item : top.items) top_keys.push_back(std::get<std::string>(item.first));
  EXPECT_EQ(top_keys, expected().at("top_level_keys").get<std::vector<std::string>>());
  EXPECT_EQ(top.find("global_step")->as<std::int64_t>(), expected().at("global_step").get<std::int64_t>());
  EXPECT_EQ(top.find("global_epoch")->as<std::int64_t>(), expected().at("global_epoch").get<std::int64_t>());

  const StateDict state = state_dict_from(checkpoint, GetParam());
  const StateDict from_file = load_state_dict(checkpoint_fixture(GetParam()));
  const auto prefixed = expected().at("state_dict_keys").get<std::vector<std::string>>();
  ASSERT_EQ(state.size(), prefixed.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    const std::string& key = prefixed[i];
    ASSERT_EQ(key.rfind("module.", 0), 0u) << key;
    EXPECT_EQ(state[i].first, key.substr(std::string("module.").size()));
    EXPECT_EQ(from_file.at(i).first, state[i].first);
    EXPECT_TRUE(from_file.at(i).second.equal(state[i].second));
    // Same tensor as in the tree (a view stays a view).
    EXPECT_TRUE(state[i].second.is_alias_of(top.find("state_dict")->as<CheckpointDict>().items[i].second.as<at::Tensor>()));
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, PickledCheckpoint, ::testing::Values("legacy.pth", "zip.pth"),
                         [](const auto& info) { return info.param == "legacy.pth" ? "Legacy" : "Zip"; });

TEST(SafetensorsCheckpoint, MatchesExpectedTensorsInFileOrder) {
  const json& want = expected().at("safetensors");
  const CheckpointObject checkpoint = read_checkpoint(checkpoint_fixture(want.at("file")));
  const auto& dict = checkpoint.as<CheckpointDict>();
  const json& tensors = want.at("tensors");
  ASSERT_EQ(dict.items.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(std::get<std::string>(dict.items[i].first), tensors[i].at("key").get<std::string>());
    expect_tensor(dict.items[i].second.as<at::Tensor>(), tensors[i]);
  }
  const StateDict state = load_state_dict(checkpoint_fixture(want.at("file")));
  ASSERT_EQ(state.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i)
    EXPECT_EQ("module." + state[i].first, tensors[i].at("key").get<std::string>());
}

// The bad files of the fixture folder: a heygem::Error naming the file and the cause.
struct BadFile {
  std::string file;
  std::string cause;  // a phrase the message must contain
};

class BadCheckpoint : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadCheckpoint, IsRejectedWithACause) {
  const auto path = checkpoint_fixture(GetParam().file);
  try {
    read_checkpoint(path);
    FAIL() << "no error for " << path;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_input);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(GetParam().cause), std::string::npos) << message;
  }
  EXPECT_THROW(load_state_dict(path), Error);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadCheckpoint,
                         ::testing::Values(BadFile{"legacy_truncated.pth", "truncated"},
                                           BadFile{"zip_truncated.pth", "end-of-central-directory record not found"},
                                           BadFile{"random.bin", "unrecognised format"}),
                         [](const auto& info) {
                           std::string name = info.param.file;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(RetinaFaceWeights, LoadInKeyOrderWithShapes) {
  const json keys = read_json(test::fixtures_root() / "retinaface" / "keys.json");
  const StateDict state = load_state_dict(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth");
  const json& entries = keys.at("entries");
  ASSERT_EQ(state.size(), keys.at("count").get<std::size_t>());
  ASSERT_EQ(state.size(), entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    SCOPED_TRACE(entries[i].at("name").get<std::string>());
    EXPECT_EQ(state[i].first, entries[i].at("name").get<std::string>());
    EXPECT_EQ(as_vector(state[i].second.sizes()), entries[i].at("shape").get<std::vector<std::int64_t>>());
    EXPECT_EQ(dtype_name(state[i].second.scalar_type()), entries[i].at("dtype").get<std::string>());
    EXPECT_TRUE(state[i].second.is_contiguous());
    if (state[i].second.is_floating_point()) {
      EXPECT_TRUE(state[i].second.isfinite().all().item<bool>());
    }
    if (state[i].first.ends_with("running_var")) {
      EXPECT_TRUE((state[i].second > 0).all().item<bool>());
    }
  }
}

}  // namespace
}  // namespace heygem::models
