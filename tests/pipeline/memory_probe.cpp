// pipeline_memory_probe AUDIO VIDEO OUTPUT T,B,L,R: runs one lip-sync item in this process (CPU,
// hash-init generator of the wav2lip fixture, fixed face box, default options) and prints one JSON
// line with the process's peak resident memory. A process of its own per run, so that the peak
// belongs to that input alone (memory_bound.cpp compares a short and a long input).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "tests/support/hash_init_fixture.hpp"

namespace {

using namespace heygem;

// A field of /proc/self/status in KiB ("VmHWM": the peak resident set, "VmRSS": the current one).
long status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  throw std::runtime_error("no " + field + " in /proc/self/status");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: pipeline_memory_probe AUDIO VIDEO OUTPUT T,B,L,R\n";
    return 2;
  }
  try {
    pipeline::FaceBox box{};
    if (std::sscanf(argv[4], "%d,%d,%d,%d", &box.top, &box.bottom, &box.left, &box.right) != 4)
      throw std::runtime_error("box: expected T,B,L,R");
    const auto generator = models::Wav2LipGenerator::untrained(models::Placement{}, test::hash_init_spec("wav2lip"));
    const long loaded_kib = status_kib("VmHWM");  // libtorch, the weights: what any run starts from
    pipeline::ItemOptions options;
    options.box = box;
    const std::filesystem::path output = argv[3];
    pipeline::ItemModels models;
    models.generator = generator.get();  // no detector: the fixed box
    const auto report = pipeline::run_lip_sync({argv[1], argv[2], output, output.parent_path()}, options, models);
    nlohmann::json stages = nlohmann::json::array();
    for (const auto& s : report.stages) stages.push_back({{"name", s.name}, {"busy_seconds", s.busy_seconds}});
    const nlohmann::json result = {{"frames", report.frames},         {"width", report.width},
                                   {"height", report.height},         {"wall_s", report.wall_seconds},
                                   {"loaded_peak_rss_kib", loaded_kib}, {"peak_rss_kib", status_kib("VmHWM")},
                                   {"stages", stages}};
    std::cout << result.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pipeline_memory_probe: " << e.what() << "\n";
    return 1;
  }
}
