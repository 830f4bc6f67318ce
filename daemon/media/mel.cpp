#include "daemon/media/mel.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <string>

#include "common/errors.hpp"
#include "daemon/media/fft.hpp"

namespace heygem::media {
namespace {

// Wav2Lip's hparams.py.
constexpr int kFftSize = 800;
constexpr int kHop = 200;
constexpr int kBins = kFftSize / 2 + 1;
constexpr int kSampleRate = 16000;
constexpr double kPreemphasis = 0.97;
constexpr double kMelMinHz = 55.0;
constexpr double kMelMaxHz = 7600.0;
constexpr float kMinLevelDb = -100.0f;
constexpr float kRefLevelDb = 20.0f;
constexpr float kMaxAbsValue = 4.0f;

// y[n] = x[n] - 0.97 x[n-1] in float64 (scipy.signal.lfilter on float32 input).
std::vector<double> preemphasis(const std::vector<float>& x) {
  std::vector<double> y(x.size());
  double previous = 0.0;
  for (size_t n = 0; n < x.size(); ++n) {
    const double current = x[n];
    y[n] = current + (-kPreemphasis) * previous;
    previous = current;
  }
  return y;
}

// np.pad(mode="reflect") index: mirror about the edge samples, which are not repeated.
size_t reflect(int64_t index, int64_t length) {
  if (length == 1) return 0;
  const int64_t period = 2 * (length - 1);
  int64_t i = ((index % period) + period) % period;
  return static_cast<size_t>(i < length ? i : period - i);
}

// scipy.signal.get_window("hann", 800, fftbins=True): 0.5 + 0.5 cos of linspace(-pi, pi, 801).
std::vector<double> periodic_hann() {
  std::vector<double> window(kFftSize);
  const double step = 2.0 * std::numbers::pi / kFftSize;
  for (int n = 0; n < kFftSize; ++n) window[n] = 0.5 + 0.5 * std::cos(n * step + -std::numbers::pi);
  return window;
}

// librosa 0.7 Slaney scale (htk=False).
constexpr double kSlaneyLinearStep = 200.0 / 3.0;
constexpr double kSlaneyLogStartHz = 1000.0;
constexpr double kSlaneyLogStartMel = kSlaneyLogStartHz / kSlaneyLinearStep;

double slaney_log_step() { return std::log(6.4) / 27.0; }

double hz_to_mel(double hz) {
  if (hz >= kSlaneyLogStartHz) return kSlaneyLogStartMel + std::log(hz / kSlaneyLogStartHz) / slaney_log_step();
  return hz / kSlaneyLinearStep;
}

double mel_to_hz(double mel) {
  if (mel >= kSlaneyLogStartMel) return kSlaneyLogStartHz * std::exp(slaney_log_step() * (mel - kSlaneyLogStartMel));
  return kSlaneyLinearStep * mel;
}

// np.linspace(start, stop, count)[i]
double linspace(double start, double stop, int count, int i) {
  if (i == count - 1) return stop;
  return static_cast<double>(i) * ((stop - start) / (count - 1)) + start;
}

// One mel band's non-zero span of filterbank columns.
struct BandSpan {
  int first = 0;
  int last = -1;  // inclusive
};

std::vector<BandSpan> band_spans(const Matrix& basis) {
  std::vector<BandSpan> spans(static_cast<size_t>(basis.rows));
  for (int band = 0; band < basis.rows; ++band) {
    BandSpan span{basis.cols, -1};
    for (int bin = 0; bin < basis.cols; ++bin)
      if (basis.at(band, bin) != 0.0f) {
        span.first = std::min(span.first, bin);
        span.last = bin;
      }
    spans[static_cast<size_t>(band)] = span;
  }
  return spans;
}

float normalised_db(float magnitude) {
  const auto min_level = static_cast<float>(std::exp(kMinLevelDb / 20.0 * std::log(10.0)));
  const float db = 20.0f * std::log10(std::max(min_level, magnitude)) - kRefLevelDb;
  const float scaled = (2.0f * kMaxAbsValue) * ((db - kMinLevelDb) / (-kMinLevelDb)) - kMaxAbsValue;
  return std::clamp(scaled, -kMaxAbsValue, kMaxAbsValue);
}

}  // namespace

Matrix stft_magnitude(const std::vector<float>& samples_16k) {
  if (samples_16k.empty()) throw Error(ErrorCode::invalid_input, "mel spectrogram: the audio has no samples");
  const std::vector<double> signal = preemphasis(samples_16k);
  const std::vector<double> window = periodic_hann();
  const auto length = static_cast<int64_t>(signal.size());
  const int frames = static_cast<int>(1 + length / kHop);
  constexpr int64_t kPad = kFftSize / 2;

  Matrix magnitude{kBins, frames, std::vector<float>(static_cast<size_t>(kBins) * frames)};
  const Fft fft(kFftSize);
  std::vector<std::complex<double>> windowed(kFftSize), spectrum(kFftSize);
  for (int t = 0; t < frames; ++t) {
    const int64_t origin = int64_t{t} * kHop - kPad;  // frame start in unpadded coordinates
    for (int n = 0; n < kFftSize; ++n) windowed[n] = window[n] * signal[reflect(origin + n, length)];
    fft.forward(windowed.data(), spectrum.data());
    for (int bin = 0; bin < kBins; ++bin) {
      // librosa stores complex64: round both parts to float, then |.| in float
      const float re = static_cast<float>(spectrum[bin].real());
      const float im = static_cast<float>(spectrum[bin].imag());
      magnitude.data[static_cast<size_t>(bin) * frames + t] = std::hypot(re, im);
    }
  }
  return magnitude;
}

Matrix mel_filterbank() {
  constexpr int kPoints = kMelBands + 2;
  const double min_mel = hz_to_mel(kMelMinHz), max_mel = hz_to_mel(kMelMaxHz);
  double mel_hz[kPoints];
  for (int i = 0; i < kPoints; ++i) mel_hz[i] = mel_to_hz(linspace(min_mel, max_mel, kPoints, i));

  Matrix basis{kMelBands, kBins, std::vector<float>(static_cast<size_t>(kMelBands) * kBins)};
  for (int band = 0; band < kMelBands; ++band) {
    const double lower_width = mel_hz[band + 1] - mel_hz[band];
    const double upper_width = mel_hz[band + 2] - mel_hz[band + 1];
    const double area_norm = 2.0 / (mel_hz[band + 2] - mel_hz[band]);
    for (int bin = 0; bin < kBins; ++bin) {
      const double hz = linspace(0.0, kSampleRate / 2.0, kBins, bin);
      const double lower = -(mel_hz[band] - hz) / lower_width;
      const double upper = (mel_hz[band + 2] - hz) / upper_width;
      // librosa writes the triangle into a float32 array, then scales it in float64
      const auto triangle = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      basis.data[static_cast<size_t>(band) * kBins + bin] = static_cast<float>(triangle * area_norm);
    }
  }
  return basis;
}

Matrix melspectrogram(const std::vector<float>& samples_16k) {
  const Matrix magnitude = stft_magnitude(samples_16k);
  const Matrix basis = mel_filterbank();
  const std::vector<BandSpan> spans = band_spans(basis);
  const int frames = magnitude.cols;
  Matrix mel{kMelBands, frames, std::vector<float>(static_cast<size_t>(kMelBands) * frames)};
  std::vector<float> column(kBins);
  for (int t = 0; t < frames; ++t) {
    for (int bin = 0; bin < kBins; ++bin) column[bin] = magnitude.at(bin, t);
    for (int band = 0; band < kMelBands; ++band) {
      double sum = 0.0;
      const BandSpan span = spans[static_cast<size_t>(band)];
      const float* weights = basis.data.data() + static_cast<size_t>(band) * kBins;
      for (int bin = span.first; bin <= span.last; ++bin) sum += static_cast<double>(weights[bin]) * column[bin];
      mel.data[static_cast<size_t>(band) * frames + t] = normalised_db(static_cast<float>(sum));
    }
  }
  return mel;
}

std::vector<int64_t> mel_chunk_starts(int64_t mel_columns, double fps) {
  if (!(fps > 0.0)) throw Error(ErrorCode::invalid_argument, "mel chunks: the frame rate must be positive");
  if (mel_columns < kMelStepSize)
    throw Error(ErrorCode::invalid_input, "mel chunks: the audio is too short (" + std::to_string(mel_columns) +
                                              " mel columns, at least " + std::to_string(kMelStepSize) + " needed)");
  // inference.py: start = int(i * (80. / fps)) while the chunk fits, then the last 16 columns once
  const double columns_per_frame = 80.0 / fps;
  std::vector<int64_t> starts;
  for (int64_t i = 0;; ++i) {
    const auto start = static_cast<int64_t>(static_cast<double>(i) * columns_per_frame);
    if (start + kMelStepSize > mel_columns) {
      starts.push_back(mel_columns - kMelStepSize);
      return starts;
    }
    starts.push_back(start);
  }
}

void copy_mel_chunk(const Matrix& mel, int64_t start, std::vector<float>& out) {
  if (start < 0 || start + kMelStepSize > mel.cols)
    throw Error(ErrorCode::invalid_argument, "mel chunk at column " + std::to_string(start) + " does not fit in " +
                                                 std::to_string(mel.cols) + " columns");
  out.resize(static_cast<size_t>(mel.rows) * kMelStepSize);
  for (int row = 0; row < mel.rows; ++row) {
    const float* source = mel.data.data() + static_cast<size_t>(row) * mel.cols + start;
    std::copy(source, source + kMelStepSize, out.begin() + static_cast<std::ptrdiff_t>(row) * kMelStepSize);
  }
}

}  // namespace heygem::media
