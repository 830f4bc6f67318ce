#pragma once
// Wav2Lip's mel spectrogram (audio.melspectrogram with its hparams) and its chunking, exactly as
// shared/fixtures/mel/README specifies: pre-emphasis 0.97, STFT n_fft 800 / hop 200 / periodic Hann
// with reflect padding, 80-band Slaney mel 55..7600 Hz, 20*log10 - 20 dB, normalised to [-4, 4].
#include <cstdint>
#include <vector>

#include "daemon/media/media_types.hpp"

namespace heygem::media {

constexpr int kMelBands = 80;
constexpr int kMelStepSize = 16;  // columns per generator input chunk

// 80 x T, T = 1 + samples / 200.
Matrix melspectrogram(const std::vector<float>& samples_16k);

// The intermediates, exposed for the parity tests:
// |STFT| of the pre-emphasised signal, 401 x T (rows = frequency bins), float32 as librosa 0.7 has it.
Matrix stft_magnitude(const std::vector<float>& samples_16k);
// The 80 x 401 Slaney mel filterbank (librosa 0.7 filters.mel, float32).
Matrix mel_filterbank();

// Start column of every output frame's chunk at `fps` (int(i * 80 / fps) while it fits, then one
// final chunk covering the last 16 columns). Its size is the number of output frames.
std::vector<int64_t> mel_chunk_starts(int64_t mel_columns, double fps);

// Copies columns [start, start + 16) of `mel` as a row-major 80 x 16 block into `out`.
void copy_mel_chunk(const Matrix& mel, int64_t start, std::vector<float>& out);

}  // namespace heygem::media
