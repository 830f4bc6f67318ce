// heygem-bench: one lip-sync item straight through the pipeline library (no daemon), printing the
// per-stage throughput; or the bare detector forward. Interface: docs/bench.md. The last stdout line
// is one JSON object for scripts/bench/record.py.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "daemon/media/video_reader.hpp"
#include "daemon/media/video_writer.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/s3fd.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"

namespace {

using namespace heygem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void synchronize(const models::Placement& placement) {
  if (placement.device.is_cuda()) torch::cuda::synchronize(placement.device.index() < 0 ? 0 : placement.device.index());
}

std::filesystem::path default_retinaface_weights() {
  const char* shared = std::getenv("HEYGEM_SHARED");
  return std::filesystem::path(shared && *shared ? shared : "../shared") / "models" / "retinaface_mobilenet0.25.pth";
}

std::unique_ptr<models::FaceDetector> load_detector(const std::string& kind, std::filesystem::path weights,
                                                    const models::Placement& placement) {
  if (kind == "retinaface")
    return models::RetinaFaceDetector::from_file(weights.empty() ? default_retinaface_weights() : weights, placement);
  if (kind == "s3fd") return models::S3fdDetector::from_file(weights, placement);
  throw std::runtime_error("unknown detector " + kind);
}

// Frames of the video as one uint8 [N, H, W, 3] tensor (decoded once, outside the timing).
at::Tensor read_frames(const std::filesystem::path& video, int count) {
  media::VideoReader reader(video);
  std::vector<at::Tensor> frames;
  media::Frame frame;
  while (static_cast<int>(frames.size()) < count && reader.next(frame))
    frames.push_back(at::from_blob(frame.data.data(), {frame.height, frame.width, 3}, {frame.stride, 3, 1}, at::kByte).clone());
  if (frames.empty()) throw std::runtime_error("no frames in " + video.string());
  return at::stack(frames);
}

nlohmann::json detector_only(const std::string& kind, const std::filesystem::path& weights,
                             const std::filesystem::path& video, int frames, int detect_frames, int batch,
                             const models::Placement& placement) {
  auto detector = load_detector(kind, weights, placement);
  const at::Tensor all = read_frames(video, frames).to(placement.device);
  c10::InferenceMode guard;
  auto run_forward = [&](const at::Tensor& chunk) {
    if (auto* s3fd = dynamic_cast<models::S3fdDetector*>(detector.get())) {
      (void)s3fd->forward(s3fd->preprocess(chunk));
    } else if (auto* retina = dynamic_cast<models::RetinaFaceDetector*>(detector.get())) {
      (void)retina->forward(retina->preprocess(chunk));
    }
  };
  run_forward(all.slice(0, 0, std::min<int64_t>(batch, all.size(0))));  // warm-up (cuDNN autotune, allocator)
  synchronize(placement);
  auto start = Clock::now();
  int64_t done = 0;
  for (int64_t i = 0; i < all.size(0); i += batch) {
    run_forward(all.slice(0, i, std::min<int64_t>(i + batch, all.size(0))));
    done += std::min<int64_t>(batch, all.size(0) - i);
  }
  synchronize(placement);
  const double forward_s = seconds_since(start);
  // detect = forward + decoding + NMS; with hash-init S3FD weights nearly every anchor is a candidate
  // and the NMS dominates, so it may be timed on fewer frames
  const int64_t detect_count = std::min<int64_t>(detect_frames >= 0 ? detect_frames : all.size(0), all.size(0));
  start = Clock::now();
  for (int64_t i = 0; i < detect_count; i += batch)
    (void)detector->detect(all.slice(0, i, std::min<int64_t>(i + batch, detect_count)));
  synchronize(placement);
  const double detect_s = seconds_since(start);
  nlohmann::json result = {{"frames", done}, {"forward_s", forward_s}, {"forward_fps", done / forward_s},
                           {"detect_frames", detect_count}, {"width", all.size(2)}, {"height", all.size(1)},
                           {"precision", models::precision_text(placement.dtype)}};
  if (detect_count > 0) {
    result["detect_s"] = detect_s;
    result["detect_fps"] = detect_count / detect_s;
  }
  return result;
}

// The bare generator forward (issue 2's single-forward timing): random mel and face batches of the
// reference's shapes, one warm-up pass, then `repeats` timed passes.
// The untrained generator both modes time (the speed does not depend on the values).
std::unique_ptr<models::Wav2LipGenerator> untrained_generator(const models::Placement& placement) {
  models::HashInitSpec spec;
  spec.seed = 1;
  spec.gain_log2["output_block.1.weight"] = -9;
  return models::Wav2LipGenerator::untrained(placement, spec);
}

nlohmann::json generator_only(int batch, int repeats, const models::Placement& placement) {
  auto generator = untrained_generator(placement);
  const at::Tensor mel = at::randn({batch, 1, 80, 16});
  const at::Tensor faces = at::rand({batch, 6, 96, 96});
  (void)generator->generate(mel, faces);  // warm-up (cuDNN autotune, allocator)
  synchronize(placement);
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) (void)generator->generate(mel, faces);
  synchronize(placement);
  const double seconds = seconds_since(start);
  return {{"batch", batch}, {"repeats", repeats}, {"precision", models::precision_text(placement.dtype)},
          {"ms_per_batch", seconds * 1e3 / repeats}, {"faces_per_s", batch * repeats / seconds}};
}

// The face restorer (--enhance): GFPGAN v1.4 from --restorer-weights, else hash-init weights (the speed
// does not depend on the values).
std::unique_ptr<models::GfpganRestorer> load_restorer(const std::filesystem::path& weights,
                                                      const models::Placement& placement) {
  if (!weights.empty()) return models::GfpganRestorer::from_file(weights, placement);
  models::HashInitSpec spec;
  spec.seed = 21;
  return models::GfpganRestorer::untrained(placement, spec);
}

// The bare GFPGAN forward on 512x512 crops at `batch`: one warm-up pass, then `repeats` timed passes.
nlohmann::json restorer_only(int batch, int repeats, const std::filesystem::path& weights,
                             const models::Placement& placement) {
  auto restorer = load_restorer(weights, placement);
  c10::InferenceMode guard;
  const at::Tensor crops = at::rand({batch, 3, 512, 512}).mul_(2).sub_(1).to(placement.device);
  (void)restorer->restore(crops);  // warm-up (cuDNN autotune, allocator)
  synchronize(placement);
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) (void)restorer->restore(crops);
  synchronize(placement);
  const double seconds = seconds_since(start);
  return {{"batch", batch}, {"repeats", repeats}, {"precision", models::precision_text(placement.dtype)},
          {"ms_per_batch", seconds * 1e3 / repeats}, {"faces_per_s", batch * repeats / seconds}};
}

// The media halves of the pipeline alone, with heygem's own code: decoding the clip (YUV -> BGR on
// one conversion thread and on the automatic number) and encoding frames of it (BGR -> YUV + x264,
// one conversion thread and the pool), so a stage's busy time in the pipeline can be set against
// what its media work costs on an otherwise idle machine.
nlohmann::json media_only(const std::filesystem::path& video, int kept_frames) {
  nlohmann::json result;
  std::vector<media::Frame> kept;
  media::VideoInfo info;
  int64_t decoded = 0;
  {  // untimed: the frames to encode, and the file in the page cache
    media::VideoReader reader(video);
    info = reader.info();
    media::Frame frame;
    while (reader.next(frame))
      if (static_cast<int>(kept.size()) < kept_frames) kept.push_back(frame);
  }
  for (int threads : {1, 0}) {
    media::VideoReaderOptions options;
    options.conversion_threads = threads;
    const auto start = Clock::now();
    media::VideoReader reader(video, options);
    media::Frame frame;
    decoded = 0;
    while (reader.next(frame)) ++decoded;
    const double seconds = seconds_since(start);
    const std::string key = threads == 1 ? "decode_1thread" : "decode_auto";
    result[key + "_s"] = seconds;
    result[key + "_fps"] = decoded / seconds;
  }
  {  // NVDEC (GPU 0), downloaded and converted as the pipeline does, where it opens
    media::VideoReaderOptions options;
    options.nvdec_device = 0;
    const auto start = Clock::now();
    media::VideoReader reader(video, options);
    media::Frame frame;
    int64_t frames = 0;
    while (reader.next(frame)) ++frames;
    const double seconds = seconds_since(start);
    result["decode_nvdec_used"] = reader.hardware_decoding();
    if (!reader.hardware_decoding()) result["decode_nvdec_fallback"] = reader.hardware_fallback();
    result["decode_nvdec_s"] = seconds;
    result["decode_nvdec_fps"] = frames / seconds;
  }
  if (kept.empty()) throw std::runtime_error("no frames in " + video.string());
  const auto out = std::filesystem::temp_directory_path() / ("heygem-bench-media-" + std::to_string(::getpid()) + ".mp4");
  for (int threads : {1, 0}) {
    media::VideoWriterOptions options;  // the pipeline's defaults (crf, preset, x264 threads)
    options.width = info.width;
    options.height = info.height;
    options.conversion_threads = threads;
    const auto start = Clock::now();
    media::VideoWriter writer(out, options);
    for (int64_t i = 0; i < decoded; ++i) writer.write(kept[static_cast<size_t>(i) % kept.size()]);
    writer.finish();
    const double seconds = seconds_since(start);
    const std::string key = threads == 1 ? "encode_1thread" : "encode_auto";
    result[key + "_s"] = seconds;
    result[key + "_fps"] = decoded / seconds;
  }
  std::filesystem::remove(out);
  result["frames"] = decoded;
  result["width"] = info.width;
  result["height"] = info.height;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"heygem-bench: the lip-sync pipeline (or a detector) without the daemon, timed per stage"};
  std::string audio, video, box_text, detector = "retinaface", detector_only_kind, weights, detector_weights;
  std::string device = "cpu", precision = "float32", detector_precision = "float32", output;
  std::string restorer_weights, restorer_precision;
  bool restorer_only_mode = false, enhance = false;
  int frames = 64, batch = 16, repeats = 10, detect_frames = -1;
  bool json_only = false, generator_only_mode = false, media_only_mode = false;
  app.add_option("--audio", audio, "audio (or a video whose sound is used)");
  app.add_option("--video", video, "video or still image (all modes but --generator-only)");
  app.add_option("--box", box_text, "fixed face box T,B,L,R (no detection)");
  app.add_option("--detector", detector, "retinaface or s3fd (when no --box)");
  app.add_option("--detector-weights", detector_weights, "detector checkpoint (default: HEYGEM_SHARED/models)");
  app.add_option("--detector-only", detector_only_kind, "time only this detector's forward: s3fd or retinaface");
  app.add_flag("--generator-only", generator_only_mode,
               "time only the Wav2Lip forward at --batch (inputs uploaded from the host each pass)");
  app.add_option("--repeats", repeats, "timed passes for --generator-only");
  app.add_flag("--restorer-only", restorer_only_mode,
               "time only the GFPGAN v1.4 forward on 512x512 crops at --batch, --repeats times (faces/s)");
  app.add_flag("--enhance", enhance, "restore every face with GFPGAN after the lip-sync (needs a detector, not --box)");
  app.add_option("--restorer-weights", restorer_weights, "GFPGANv1.4.pth (default: hash-init weights)");
  app.add_option("--restorer-precision", restorer_precision, "restorer precision (default: --precision)");
  app.add_flag("--media-only", media_only_mode,
               "time only decoding the --video and encoding its frames (one conversion thread, then the automatic number)");
  app.add_option("--weights", weights, "weights for --detector-only");
  app.add_option("--frames", frames, "frames for --detector-only");
  app.add_option("--batch", batch, "batch for --detector-only");
  app.add_option("--detect-frames", detect_frames, "frames the full detection (forward + NMS) is timed on, --detector-only (default: --frames)");
  app.add_option("--device", device, "cpu, cuda, cuda:N");
  app.add_option("--precision", precision, "generator precision: float32, float16, bfloat16");
  app.add_option("--detector-precision", detector_precision, "detector precision");
  app.add_option("-o,--output", output, "output MP4 (default: a temporary file, removed)");
  app.add_flag("--json", json_only, "print only the JSON result");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto detector_placement = models::parse_placement(device, detector_precision);
    if (generator_only_mode) {
      std::cout << generator_only(batch, repeats, models::parse_placement(device, precision)).dump() << std::endl;
      return 0;
    }
    const auto restorer_placement =
        models::parse_placement(device, restorer_precision.empty() ? precision : restorer_precision);
    if (restorer_only_mode) {
      std::cout << restorer_only(batch, repeats, restorer_weights, restorer_placement).dump() << std::endl;
      return 0;
    }
    if (video.empty()) throw std::runtime_error("--video is required");
    if (media_only_mode) {
      std::cout << media_only(video, 250).dump() << std::endl;
      return 0;
    }
    if (!detector_only_kind.empty()) {
      auto result = detector_only(detector_only_kind, weights, video, frames, detect_frames, batch, detector_placement);
      std::cout << result.dump() << std::endl;
      return 0;
    }
    if (audio.empty()) throw std::runtime_error("--audio is required");
    const auto placement = models::parse_placement(device, precision);
    auto start = Clock::now();
    auto generator = untrained_generator(placement);
    const double load_s = seconds_since(start);

    pipeline::ItemOptions options;
    std::unique_ptr<models::FaceDetector> face_detector;
    if (!box_text.empty()) {
      int t, b, l, r;
      if (std::sscanf(box_text.c_str(), "%d,%d,%d,%d", &t, &b, &l, &r) != 4) throw std::runtime_error("--box: expected T,B,L,R");
      options.box = pipeline::FaceBox{t, b, l, r};
    } else {
      face_detector = load_detector(detector, detector_weights, detector_placement);
    }
    std::unique_ptr<models::GfpganRestorer> restorer;
    if (enhance) {
      if (options.box) throw std::runtime_error("--enhance aligns faces by the detector's landmarks: drop --box");
      restorer = load_restorer(restorer_weights, restorer_placement);
    }
    const auto out = output.empty() ? std::filesystem::temp_directory_path() / ("heygem-bench-" + std::to_string(::getpid()) + ".mp4")
                                    : std::filesystem::path(output);
    start = Clock::now();
    pipeline::ItemModels item_models{generator.get(), face_detector.get()};
    item_models.restorer = restorer.get();
    item_models.restorer_name = restorer ? "gfpgan" : "";
    const auto report = pipeline::run_lip_sync({audio, video, out, out.parent_path()}, options, item_models);
    const double wall = seconds_since(start);
    if (output.empty()) std::filesystem::remove(out);
    nlohmann::json stages = nlohmann::json::array();
    for (const auto& s : report.stages)
      stages.push_back({{"name", s.name}, {"busy_seconds", s.busy_seconds}, {"frames", s.frames}, {"fps", s.fps()}});
    nlohmann::json result = {{"frames", report.frames},     {"wall_s", wall},
                             {"fps", report.frames / wall}, {"generator_load_s", load_s},
                             {"frames_without_face", report.frames_without_face},
                             {"frames_gated", report.frames_gated}, {"frames_restored", report.frames_restored},
                             {"width", report.width},       {"height", report.height},
                             {"stages", stages}};
    if (!json_only)
      for (const auto& s : report.stages)
        std::printf("%-9s %8.1f fps  (%lld frames, %.2f s busy)\n", s.name.c_str(), s.fps(), static_cast<long long>(s.frames), s.busy_seconds);
    std::cout << result.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "heygem-bench: " << e.what() << "\n";
    return 1;
  }
}
