#pragma once
// The silence gate: where the audio is silent the source frame passes through unchanged instead of
// the generator's mouth (the generator keeps moving the mouth in silence), with a short cross-fade
// on the spoken side of each edge.
//
// Detector: a frame is silent when no value of its mel window (the 80 x 16 chunk the generator would
// get, 0.2 s) exceeds `threshold` on Wav2Lip's normalised scale [-4, 4]. The default -2.0 is
// -75 dB re the mel reference level (25 dB above the scale's -100 dB floor): room noise of a quiet
// recording stays below it, the quietest syllables of speech reach above -1. Only runs of at least
// `min_frames` silent frames are gated, so pauses between words keep the generated mouth.
#include <cstdint>
#include <vector>

#include "daemon/media/media_types.hpp"

namespace heygem::pipeline {

struct SilenceGateOptions {
  bool enabled = true;
  float threshold = -2.0f;  // normalised mel units
  int min_frames = 3;       // shortest gated run
  int fade_frames = 2;      // cross-fade length on each edge (spoken side)
};

// Per output frame (one per mel chunk start): the weight of the generated face in [0, 1]. 0 = gated
// (the source frame passes through byte for byte), 1 = generated, in between = cross-fade. All ones
// when the gate is disabled.
std::vector<float> silence_gate_weights(const media::Matrix& mel, const std::vector<int64_t>& chunk_starts,
                                        const SilenceGateOptions& options);

// Whether one frame's mel window [start, start + 16) is silent.
bool silent_window(const media::Matrix& mel, int64_t start, float threshold);

}  // namespace heygem::pipeline
