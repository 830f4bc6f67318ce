#pragma once
// Any FFmpeg-readable audio (or the audio track of a video), downmixed to mono and resampled to
// 16 kHz with libswresample, as float samples = int16 / 32768 (what the reference's mel reads).
#include <filesystem>
#include <vector>

#include "daemon/media/media_types.hpp"

namespace heygem::media {

constexpr int kMelSampleRate = 16000;

// Throws heygem::Error(invalid_input) naming the file: unreadable, no audio stream, zero-length
// audio, or longer than limits.max_duration_seconds.
std::vector<float> load_audio_16k_mono(const std::filesystem::path& file, const MediaLimits& limits = {});

}  // namespace heygem::media
