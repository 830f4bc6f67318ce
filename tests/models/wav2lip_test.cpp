// Wav2Lip generator: state dict layout equal to the reference's, strict loading with clear errors,
// input validation.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/errors.hpp"
#include "daemon/models/state_dict.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/models/wav2lip_net.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"

namespace heygem::models {
namespace {

nlohmann::json keys_json(const std::string& folder) {
  std::ifstream in(test::fixtures_root() / folder / "keys.json");
  if (!in) throw std::runtime_error("cannot open keys.json of " + folder);
  return nlohmann::json::parse(in);
}

StateDict layout_from_keys(const std::string& folder) {
  const nlohmann::json keys = keys_json(folder);
  StateDict layout;
  for (const auto& entry : keys.at("entries")) {
    const auto shape = entry.at("shape").get<std::vector<int64_t>>();
    const auto dtype = entry.at("dtype").get<std::string>() == "int64" ? at::kLong : at::kFloat;
    layout.emplace_back(entry.at("name").get<std::string>(), at::zeros(shape, dtype));
  }
  return layout;
}

HashInitSpec fixture_spec() { return test::hash_init_spec("wav2lip"); }

// Hash-init weights are expensive to build (36M values); the tests share one set read-only.
const StateDict& fixture_weights() {
  static const StateDict weights = hash_init(wav2lip_layout(), fixture_spec());
  return weights;
}

StateDict copy_of(const StateDict& weights) { return StateDict(weights.begin(), weights.end()); }

std::size_t index_of(const StateDict& weights, const std::string& name) {
  for (std::size_t i = 0; i < weights.size(); ++i)
    if (weights[i].first == name) return i;
  throw std::runtime_error("no entry " + name);
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) text += (i ? "," : "") + std::to_string(sizes[i]);
  return text + "]";
}

// Runs `action`, expects heygem::Error with `code`, returns its message.
template <typename Action>
std::string error_of(Action&& action, ErrorCode code) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), code) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "no heygem::Error thrown";
  return {};
}

void expect_same_layout(const StateDict& actual, const StateDict& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t k = 0; k < actual.size(); ++k) {
    SCOPED_TRACE("entry " + std::to_string(k));
    EXPECT_EQ(actual[k].first, expected[k].first);
    EXPECT_EQ(actual[k].second.sizes(), expected[k].second.sizes()) << actual[k].first;
    EXPECT_EQ(actual[k].second.scalar_type(), expected[k].second.scalar_type()) << actual[k].first;
  }
}

TEST(Wav2LipNet, StateDictEqualsReferenceKeysInOrder) {
  const auto keys = keys_json("wav2lip");
  const StateDict expected = layout_from_keys("wav2lip");
  ASSERT_EQ(expected.size(), keys.at("count").get<std::size_t>());
  Wav2LipNet net;
  expect_same_layout(module_state_dict(net), expected);
}

TEST(Wav2LipNet, LayoutFunctionEqualsReferenceKeys) {
  expect_same_layout(wav2lip_layout(), layout_from_keys("wav2lip"));
}

TEST(Wav2LipGenerator, WrongShapeNamesSourceKeyAndBothShapes) {
  StateDict weights = copy_of(fixture_weights());
  const std::string victim = "face_decoder_blocks.3.0.conv_block.0.weight";
  const std::string donor = "face_decoder_blocks.4.0.conv_block.0.weight";  // a differently shaped kernel
  const at::Tensor expected_shape_of = weights[index_of(weights, victim)].second;
  const at::Tensor wrong = weights[index_of(weights, donor)].second;
  ASSERT_NE(expected_shape_of.sizes(), wrong.sizes());
  weights[index_of(weights, victim)].second = wrong;
  const std::string message =
      error_of([&] { Wav2LipGenerator(weights, Placement{}, "bad.pth"); }, ErrorCode::invalid_input);
  EXPECT_EQ(message, "bad.pth: wav2lip: " + victim + ": expected " + shape_text(expected_shape_of.sizes()) +
                         ", got " + shape_text(wrong.sizes()));
}

TEST(Wav2LipGenerator, MissingKeyIsNamed) {
  StateDict weights = copy_of(fixture_weights());
  const std::string victim = weights[weights.size() / 2].first;
  weights.erase(weights.begin() + static_cast<std::ptrdiff_t>(weights.size() / 2));
  const std::string message =
      error_of([&] { Wav2LipGenerator(weights, Placement{}, "partial.pth"); }, ErrorCode::invalid_input);
  EXPECT_NE(message.find("partial.pth"), std::string::npos) << message;
  EXPECT_NE(message.find("missing key " + victim), std::string::npos) << message;
}

TEST(Wav2LipGenerator, UnexpectedKeyIsNamed) {
  StateDict weights = copy_of(fixture_weights());
  weights.emplace_back("face_encoder_blocks.9.0.conv_block.0.weight", at::zeros({1}));
  const std::string message =
      error_of([&] { Wav2LipGenerator(weights, Placement{}, "extra.pth"); }, ErrorCode::invalid_input);
  EXPECT_NE(message.find("unexpected key face_encoder_blocks.9.0.conv_block.0.weight"), std::string::npos) << message;
}

TEST(Wav2LipGenerator, OtherModelIsNotAWav2LipCheckpoint) {
  const StateDict s3fd = layout_from_keys("s3fd");
  ASSERT_FALSE(s3fd.empty());
  const std::string first_key = fixture_weights().front().first;
  const std::string message =
      error_of([&] { Wav2LipGenerator(s3fd, Placement{}, "s3fd.pth"); }, ErrorCode::invalid_input);
  EXPECT_EQ(message.rfind("s3fd.pth: not a Wav2Lip generator checkpoint: missing key " + first_key, 0), 0u)
      << message;
  EXPECT_NE(message.find("the first " + s3fd.front().first), std::string::npos) << message;
}

TEST(Wav2LipGenerator, FromFileOfAnotherModelNamesTheFile) {
  const auto file = test::shared_root() / "models" / "retinaface_mobilenet0.25.pth";
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
  const std::string message =
      error_of([&] { Wav2LipGenerator::from_file(file, Placement{}); }, ErrorCode::invalid_input);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not a Wav2Lip generator checkpoint"), std::string::npos) << message;
}

TEST(Wav2LipGenerator, FromMissingFileNamesTheFile) {
  const auto file = std::filesystem::temp_directory_path() / "heygem-no-such-wav2lip.pth";
  const std::string message = error_of([&] { Wav2LipGenerator::from_file(file, Placement{}); }, ErrorCode::invalid_input);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
}

TEST(Wav2LipGenerator, FailedLoadLeavesTheNetworkUntouched) {
  Wav2LipNet net;
  load_into(net, fixture_weights(), "wav2lip");
  StateDict before;
  for (const auto& [name, tensor] : module_state_dict(net)) before.emplace_back(name, tensor.clone());

  // Every entry differs from the loaded one, and only the very last is malformed.
  StateDict bad;
  for (const auto& [name, tensor] : fixture_weights()) bad.emplace_back(name, tensor + 1);
  bad.back().second = at::zeros({bad.back().second.numel() + 1}, bad.back().second.options());
  EXPECT_THROW(load_into(net, bad, "wav2lip"), Error);

  const StateDict after = module_state_dict(net);
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t k = 0; k < after.size(); ++k) EXPECT_TRUE(after[k].second.equal(before[k].second)) << after[k].first;
}

TEST(Wav2LipGenerator, UntrainedIsLabelledDeterministicAndInRange) {
  const HashInitSpec spec = fixture_spec();
  const auto generator = Wav2LipGenerator::untrained(Placement{}, spec);
  EXPECT_NE(generator->source().find("untrained"), std::string::npos);
  EXPECT_NE(generator->source().find("seed " + std::to_string(spec.seed)), std::string::npos);
  const int64_t batch = test::manifest("wav2lip").at("meta").at("batch").get<int64_t>();
  at::Tensor mel = at::rand({batch, 1, 80, 16}) * 8 - 4;
  at::Tensor faces = at::rand({batch, 6, 96, 96});
  at::Tensor first = generator->generate(mel, faces);
  at::Tensor second = generator->generate(mel, faces);
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{batch, 3, 96, 96}));
  EXPECT_EQ(first.scalar_type(), at::kFloat);
  EXPECT_TRUE(first.equal(second));
  EXPECT_GT(first.min().item<float>(), 0.0f);
  EXPECT_LT(first.max().item<float>(), 1.0f);
  // generate() = sigmoid(logits())
  EXPECT_TRUE(at::allclose(first, generator->logits(mel, faces).sigmoid(), 0, 0));
}

TEST(Wav2LipGenerator, ResultDoesNotDependOnInputLayout) {
  const Wav2LipGenerator generator(fixture_weights(), Placement{}, "fixture");
  const at::Tensor mel = at::rand({2, 1, 80, 16}) * 8 - 4;
  const at::Tensor faces = at::rand({2, 6, 96, 96});
  // Same values, other strides: every second row of a taller batch, and a double-precision copy.
  const at::Tensor strided_faces = at::repeat_interleave(faces, 2, 2).slice(2, 0, 192, 2);
  ASSERT_TRUE(strided_faces.equal(faces));
  const at::Tensor expected = generator.generate(mel, faces);
  EXPECT_TRUE(generator.generate(mel, strided_faces).equal(expected));
  EXPECT_TRUE(generator.generate(mel.to(at::kDouble), faces.contiguous(at::MemoryFormat::ChannelsLast)).equal(expected));
}

TEST(Wav2LipGenerator, RejectsBadInputShapes) {
  const Wav2LipGenerator generator(fixture_weights(), Placement{}, "fixture");
  EXPECT_EQ(generator.source(), "fixture");
  const at::Tensor mel = at::zeros({2, 1, 80, 16});
  const at::Tensor faces = at::zeros({2, 6, 96, 96});
  std::string message = error_of([&] { generator.generate(at::zeros({2, 1, 80, 15}), faces); }, ErrorCode::invalid_argument);
  EXPECT_NE(message.find("mel: expected [B,1,80,16], got [2,1,80,15]"), std::string::npos) << message;
  message = error_of([&] { generator.generate(mel, at::zeros({2, 3, 96, 96})); }, ErrorCode::invalid_argument);
  EXPECT_NE(message.find("faces: expected [B,6,96,96], got [2,3,96,96]"), std::string::npos) << message;
  message = error_of([&] { generator.generate(mel, at::zeros({3, 6, 96, 96})); }, ErrorCode::invalid_argument);
  EXPECT_NE(message.find("mel batch 2 differs from face batch 3"), std::string::npos) << message;
  message = error_of([&] { generator.generate(mel, at::zeros({2, 6, 96, 96}, at::kByte)); }, ErrorCode::invalid_argument);
  EXPECT_NE(message.find("expected a floating tensor"), std::string::npos) << message;
  error_of([&] { generator.generate(at::Tensor(), faces); }, ErrorCode::invalid_argument);
}

TEST(Wav2LipGenerator, RefusesHalfPrecisionOnCpu) {
  const std::string message = error_of(
      [&] { Wav2LipGenerator(fixture_weights(), Placement{c10::Device(c10::kCPU), c10::kHalf}, "fixture"); },
      ErrorCode::invalid_argument);
  EXPECT_NE(message.find("float16"), std::string::npos) << message;
}

}  // namespace
}  // namespace heygem::models
