// heygemd.yaml(5) and the installed config/heygemd.yaml against the daemon's own configuration
// code: the same keys, the same defaults.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "common/errors.hpp"
#include "daemon/config/config.hpp"
#include "tests/docs/doc_tools.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::test {
namespace {

const std::filesystem::path kSource(HEYGEM_SOURCE_DIR);
const std::filesystem::path kManPage = kSource / "man" / "heygemd.yaml.5";
const std::filesystem::path kExampleConfig = kSource / "config" / "heygemd.yaml";

// "a.b" -> scalar; list items as "a.b[0].c"; a list itself as "a.b" -> "[name, name]".
using FlatYaml = std::map<std::string, std::string>;

std::string item_label(const YAML::Node& item) {
  if (item.IsScalar()) return item.Scalar();
  if (item.IsMap() && item["name"]) return item["name"].Scalar();
  return "?";
}

void flatten(const YAML::Node& node, const std::string& key, FlatYaml& out) {
  if (node.IsMap()) {
    for (const auto& child : node) {
      const auto name = child.first.as<std::string>();
      flatten(child.second, key.empty() ? name : key + "." + name, out);
    }
  } else if (node.IsSequence()) {
    std::string labels;
    for (std::size_t i = 0; i < node.size(); ++i) {
      labels += (i ? ", " : "") + item_label(node[i]);
      flatten(node[i], key + "[" + std::to_string(i) + "]", out);
    }
    out[key] = "[" + labels + "]";
  } else {
    out[key] = node.IsNull() ? "" : node.Scalar();
  }
}

FlatYaml flatten_text(const std::string& text) {
  FlatYaml flat;
  flatten(YAML::Load(text), "", flat);
  return flat;
}

// "models.entries[3].name" -> "models.entries[].name"
std::string key_pattern(const std::string& key) {
  static const std::regex index(R"(\[\d+\])");
  return std::regex_replace(key, index, "[]");
}

std::string strip_quotes(const std::string& text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
  return text;
}

// The "key: default" tags of the KEYS section.
std::map<std::string, std::string> documented_keys() {
  static const std::regex tag(R"(^([a-z_]+(?:\[\])?(?:\.[a-z_]+(?:\[\])?)*): (.+)$)");
  std::map<std::string, std::string> keys;
  const auto page = parse_man_page(kManPage);
  for (const auto* block : page.subsections("KEYS"))
    for (const auto& entry : block->entries)
      for (const auto& text : entry.tags) {
        std::smatch match;
        if (!std::regex_match(text, match, tag)) {
          ADD_FAILURE() << "heygemd.yaml(5): tag \"" << text << "\" is not \"key: default\"";
          continue;
        }
        EXPECT_TRUE(keys.emplace(match[1], match[2]).second) << "documented twice: " << match[1];
      }
  return keys;
}

// "a.b.c: v" as nested YAML.
std::string nested_yaml(const std::string& key, const std::string& value) {
  std::string yaml, indent;
  std::size_t start = 0;
  for (auto dot = key.find('.'); dot != std::string::npos; start = dot + 1, dot = key.find('.', start)) {
    yaml += indent + key.substr(start, dot - start) + ":\n";
    indent += "  ";
  }
  return yaml + indent + key.substr(start) + ": " + value + "\n";
}

// A generator entry with `extra` lines ("key: value"), beside a detector, as the defaults.
std::string config_with_generator_entry(const std::vector<std::string>& lines) {
  std::string yaml =
      "models:\n  default_generator: probe\n  default_detector: detector\n  entries:\n"
      "    - name: detector\n      kind: retinaface\n      weights: detector.pth\n    -";
  for (std::size_t i = 0; i < lines.size(); ++i) yaml += (i ? "      " : " ") + lines[i] + "\n";
  return yaml;
}

residency::ModelSpec probe_entry(const std::vector<std::string>& lines) {
  const auto config = config::parse_config(config_with_generator_entry(lines), "probe");
  return config.residency.models.at(1);
}

TEST(ConfigManPage, DocumentsExactlyTheDaemonsKeys) {
  const auto documented = documented_keys();
  std::set<std::string> daemon_keys;
  for (const auto& [key, value] : flatten_text(config::embedded_defaults())) daemon_keys.insert(key_pattern(key));
  daemon_keys.insert("models.entries[].device");  // defaults to models.device, so the default entries leave it out
  std::set<std::string> documented_names;
  for (const auto& [key, value] : documented) documented_names.insert(key);
  EXPECT_EQ(documented_names, daemon_keys);
}

TEST(ConfigManPage, DefaultsEqualTheEmbeddedOnes) {
  const auto defaults = flatten_text(config::embedded_defaults());
  int compared = 0;
  for (const auto& [key, value] : documented_keys()) {
    if (key.find("[]") != std::string::npos) continue;  // per-entry keys: see the next test
    const auto found = defaults.find(key);
    if (found == defaults.end()) continue;  // reported by DocumentsExactlyTheDaemonsKeys
    EXPECT_EQ(strip_quotes(value), found->second) << key;
    ++compared;
    if (found->second.front() == '[') continue;
    // And writing the documented default is valid configuration.
    EXPECT_NO_THROW(config::parse_config(nested_yaml(key, value), "heygemd.yaml(5) " + key)) << key << ": " << value;
  }
  EXPECT_GT(compared, 0);
}

TEST(ConfigManPage, ModelEntryDefaultsEqualOmittingTheKey) {
  const std::string prefix = "models.entries[].";
  const auto omitted = probe_entry({"name: probe", "kind: wav2lip"});
  int compared = 0;
  for (const auto& [key, value] : documented_keys()) {
    if (key.rfind(prefix, 0) != 0) continue;
    const auto leaf = key.substr(prefix.size());
    SCOPED_TRACE(key + ": " + value);
    if (value == "(required)") {
      const std::string other = leaf == "name" ? "kind: wav2lip" : "name: probe";
      try {
        probe_entry({other});
        ADD_FAILURE() << "an entry without " << leaf << " was accepted";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("entries[1]." + leaf), std::string::npos) << error.what();
      }
      continue;
    }
    const std::vector<std::string> lines{"name: probe", "kind: wav2lip", leaf + ": " + value};
    const auto written = probe_entry(lines);
    EXPECT_EQ(written.weights, omitted.weights);
    EXPECT_EQ(written.devices, omitted.devices);
    EXPECT_EQ(written.precision, omitted.precision);
    EXPECT_EQ(written.preload, omitted.preload);
    EXPECT_EQ(written.keep_alive, omitted.keep_alive);
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

TEST(ExampleConfig, ListsEveryKeyWithItsDefault) {
  const auto example = flatten_text(read_text(kExampleConfig));
  const auto defaults = flatten_text(config::embedded_defaults());
  for (const auto& [key, value] : defaults) {
    const auto found = example.find(key);
    if (found == example.end()) ADD_FAILURE() << "config/heygemd.yaml lacks " << key << " (default \"" << value << "\")";
    else EXPECT_EQ(found->second, value) << "config/heygemd.yaml: " << key << " differs from the default";
  }
  for (const auto& [key, value] : example)
    EXPECT_TRUE(defaults.count(key)) << "config/heygemd.yaml has " << key << ", which the daemon's defaults lack";
}

TEST(ExampleConfig, LoadsInTheDaemonsParser) {
  EXPECT_NO_THROW(config::load_config_file(kExampleConfig));
}

#ifdef HEYGEMD_BINARY
TEST(ExampleConfig, PassesHeygemdCheckConfig) {
  const auto result = run_command({HEYGEMD_BINARY, "--check-config", "--config", kExampleConfig.string()});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("config OK"), std::string::npos) << result.out;
}

TEST(ExampleConfig, HeygemdCheckConfigRefusesAMisspelledKey) {
  // The check above means something only if heygemd checks keys at all.
  TempDir scratch;
  const auto broken = scratch.path() / "heygemd.yaml";
  std::ofstream(broken) << "scheduler:\n  max_concurent_jobs: 2\n";
  const auto result = run_command({HEYGEMD_BINARY, "--check-config", "--config", broken.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("scheduler.max_concurent_jobs"), std::string::npos) << result.err;
}
#endif

}  // namespace
}  // namespace heygem::test
