#pragma once
// The avatar cache: a presenter video's face detections, keyed by the video's content hash and
// everything else that decides them, so the same video with new audio skips detection entirely.
//
// An entry holds the detector's raw answer per source frame (its highest-scoring face, or none),
// not the padded and smoothed boxes: the pads and the 5-frame smoothing are cheap to redo, and the
// smoothing of the last frames depends on where the audio cuts the video, so storing raw faces keeps
// a hit byte-identical to a fresh detection for any audio length, pads or smoothing.
//
// One small versioned file per entry (<directory>/<sha256 of the key>.boxes), written to a temp file
// and renamed; a corrupt, foreign or other-version file is ignored with a warning (and replaced by
// the next store). The directory is bounded: after a store the least recently used entries (by
// mtime; a hit touches its file) go until the total fits max_bytes.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heygem::pipeline {

// A detector box in frame pixels, before pads and smoothing.
struct RawFace {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  bool operator==(const RawFace&) const = default;
};

struct AvatarKey {
  std::string video_sha256;  // the video file's content
  std::string detector;      // the detector's identity: kind, weights (path, size, mtime), placement
  int fps_num = 0, fps_den = 1;  // source frames are resampled to the output rate before detection
  int detector_batch = 0;    // the effective batch (batched inference need not be bit-identical)

  // Canonical "name=value" lines; the entry's file name is its SHA-256.
  std::string text() const;
};

struct AvatarBoxes {
  std::vector<std::optional<RawFace>> faces;  // source frames 0, 1, ...; nullopt = no face
  bool complete = false;  // faces covers the whole video, else only its first faces.size() frames

  // Whether a run whose first pass shows `first_pass_frames` source frames finds all of them here.
  bool covers(std::int64_t first_pass_frames) const {
    return complete || static_cast<std::int64_t>(faces.size()) >= first_pass_frames;
  }
  bool operator==(const AvatarBoxes&) const = default;
};

struct AvatarCacheOptions {
  std::filesystem::path directory;
  std::uint64_t max_bytes = 64ULL << 20;  // all entries together; 0 = the cache is off
};

class AvatarCache {
 public:
  static constexpr std::uint32_t kFormatVersion = 1;

  // Creates the directory (0700) if needed. Throws heygem::Error(resource) when it cannot.
  explicit AvatarCache(AvatarCacheOptions options);

  // The entry for `key`, or nullopt (none, or unusable: then a warning says why). A hit marks the
  // entry as recently used.
  std::optional<AvatarBoxes> load(const AvatarKey& key) const;
  // Writes the entry atomically, then evicts least recently used entries beyond max_bytes.
  // Throws heygem::Error(resource) when the file cannot be written.
  void store(const AvatarKey& key, const AvatarBoxes& boxes) const;

  std::filesystem::path entry_path(const AvatarKey& key) const;
  const AvatarCacheOptions& options() const { return options_; }

 private:
  void evict() const;

  AvatarCacheOptions options_;
};

// The part of a detector's identity that its weights file gives: "<path> size=<bytes> mtime=<ns>"
// (a replaced file changes size or mtime). Throws heygem::Error(invalid_input) when it is missing.
std::string weights_identity(const std::filesystem::path& weights);

}  // namespace heygem::pipeline
