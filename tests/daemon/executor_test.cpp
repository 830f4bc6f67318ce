// ItemExecutor::validate: what a submit's options are checked against before the job is queued.
#include "daemon/jobs/item_executor.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "daemon/residency/model_registry.hpp"

namespace heygem::jobs {
namespace {

residency::ResidencyConfig config(bool with_gfpgan) {
  residency::ResidencyConfig c;
  residency::ModelSpec generator;
  generator.name = "wav2lip";
  generator.preload = false;
  residency::ModelSpec detector;
  detector.name = "retinaface";
  detector.kind = residency::ModelKind::retinaface;
  detector.weights = "retinaface.pth";
  detector.preload = false;
  c.models = {generator, detector};
  if (with_gfpgan) {
    residency::ModelSpec restorer;
    restorer.name = "gfpgan";
    restorer.kind = residency::ModelKind::gfpgan;
    restorer.weights = "GFPGANv1.4.pth";
    restorer.preload = false;
    c.models.push_back(restorer);
  }
  c.default_generator = "wav2lip";
  c.default_detector = "retinaface";
  return c;
}

std::string validation_error(const ItemExecutor& executor, const nlohmann::json& options) {
  try {
    executor.validate(protocol::submit_options_from_json(options));
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(ItemExecutorValidate, EnhanceNeedsGfpganWeightsAndLandmarks) {
  const auto without = config(false);
  auto registry = residency::make_model_registry(without);
  ItemExecutor executor(*registry, without);
  EXPECT_EQ(validation_error(executor, nlohmann::json::object()), "");
  EXPECT_EQ(validation_error(executor, {{"enhance", false}}), "");
  const std::string refused = validation_error(executor, {{"enhance", true}});
  EXPECT_NE(refused.find("GFPGANv1.4.pth"), std::string::npos) << refused;

  const auto with = config(true);
  auto registry_with = residency::make_model_registry(with);
  ItemExecutor enhancing(*registry_with, with);
  EXPECT_EQ(validation_error(enhancing, {{"enhance", true}}), "");
  const std::string boxed = validation_error(enhancing, {{"enhance", true}, {"box", {10, 100, 20, 120}}});
  EXPECT_NE(boxed.find("landmarks"), std::string::npos) << boxed;
  // The daemon's default does not apply to fixed-box jobs; an explicit --enhance does.
  auto by_default = with;
  by_default.default_enhance = true;
  ItemExecutor defaulting(*registry_with, by_default);
  EXPECT_EQ(validation_error(defaulting, {{"box", {10, 100, 20, 120}}}), "");
  EXPECT_NE(validation_error(defaulting, {{"enhance", true}, {"box", {10, 100, 20, 120}}}), "");
}

// A job that would need a default model the daemon lacks is refused at submit (a cluster job: at
// intake, dead-lettered with the reason) instead of failing when it runs.
TEST(ItemExecutorValidate, DefaultsAJobNeedsMustBeConfigured) {
  auto no_detector = config(false);
  no_detector.default_detector = "";
  auto registry = residency::make_model_registry(no_detector);
  ItemExecutor executor(*registry, no_detector);
  const std::string refused = validation_error(executor, {{"crf", 23}});
  EXPECT_NE(refused.find("models.default_detector"), std::string::npos) << refused;
  EXPECT_EQ(validation_error(executor, {{"box", {10, 100, 20, 120}}}), "");
  EXPECT_EQ(validation_error(executor, {{"detector", "retinaface"}}), "");
  auto no_generator = config(false);
  no_generator.default_generator = "";
  auto registry_without = residency::make_model_registry(no_generator);
  ItemExecutor generatorless(*registry_without, no_generator);
  EXPECT_NE(validation_error(generatorless, nlohmann::json::object()).find("models.default_generator"), std::string::npos);
  EXPECT_EQ(validation_error(generatorless, {{"generator", "wav2lip"}}), "");
}

}  // namespace
}  // namespace heygem::jobs
