// The FFT against a plain DFT, and the mel's shape, chunking and copying rules.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>

#include "common/errors.hpp"
#include "daemon/media/fft.hpp"
#include "daemon/media/mel.hpp"

namespace heygem::media {
namespace {

std::vector<std::complex<double>> plain_dft(const std::vector<std::complex<double>>& in) {
  const size_t n = in.size();
  std::vector<std::complex<double>> out(n);
  for (size_t k = 0; k < n; ++k) {
    std::complex<double> sum = 0;
    for (size_t j = 0; j < n; ++j) sum += in[j] * std::polar(1.0, -2.0 * std::numbers::pi * double((j * k) % n) / double(n));
    out[k] = sum;
  }
  return out;
}

TEST(Fft, MatchesAPlainDftForManySizes) {
  std::mt19937 random(3);
  std::uniform_real_distribution<double> value(-1.0, 1.0);
  for (size_t n : {1u, 2u, 3u, 4u, 5u, 7u, 12u, 49u, 64u, 100u, 800u, 2 * 3 * 5 * 7 * 11u}) {
    std::vector<std::complex<double>> in(n), out(n);
    for (auto& x : in) x = {value(random), value(random)};
    Fft(n).forward(in.data(), out.data());
    const auto expected = plain_dft(in);
    double worst = 0;
    for (size_t k = 0; k < n; ++k) worst = std::max(worst, std::abs(out[k] - expected[k]));
    EXPECT_LT(worst, 1e-9 * std::sqrt(double(n))) << "n = " << n;
  }
}

TEST(Mel, ShapeFollowsTheSampleCount) {
  for (size_t samples : {1u, 199u, 200u, 401u, 3201u}) {
    const Matrix mel = melspectrogram(std::vector<float>(samples, 0.25f));
    EXPECT_EQ(mel.rows, kMelBands);
    EXPECT_EQ(mel.cols, static_cast<int>(1 + samples / 200)) << samples;
    for (float v : mel.data) {
      EXPECT_GE(v, -4.0f);
      EXPECT_LE(v, 4.0f);
    }
  }
  EXPECT_THROW(melspectrogram({}), Error);
}

TEST(Mel, SilenceSitsOnTheLowerClip) {
  const Matrix mel = melspectrogram(std::vector<float>(16000, 0.0f));
  for (float v : mel.data) EXPECT_EQ(v, -4.0f);
}

TEST(Mel, ToneLandsInItsBand) {
  // a 1 kHz tone: the loudest band in a middle frame is the one whose filter peaks nearest 1 kHz
  std::vector<float> tone(16000);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = 0.5f * static_cast<float>(std::sin(2 * std::numbers::pi * 1000.0 * i / 16000.0));
  const Matrix mel = melspectrogram(tone);
  const Matrix basis = mel_filterbank();
  const int bin_1khz = 1000 * 800 / 16000;
  int expected_band = 0;
  for (int band = 0; band < basis.rows; ++band)
    if (basis.at(band, bin_1khz) > basis.at(expected_band, bin_1khz)) expected_band = band;
  int loudest = 0;
  const int t = mel.cols / 2;
  for (int band = 0; band < mel.rows; ++band)
    if (mel.at(band, t) > mel.at(loudest, t)) loudest = band;
  EXPECT_EQ(loudest, expected_band);
}

TEST(MelChunks, StartsFollowTheReferenceRuleWithTheTail) {
  for (double fps : {25.0, 30.0, 30000.0 / 1001.0, 24.0, 60.0}) {
    for (int64_t columns : {16, 17, 100, 239, 4801}) {
      SCOPED_TRACE(std::to_string(fps) + " fps, " + std::to_string(columns) + " columns");
      const auto starts = mel_chunk_starts(columns, fps);
      ASSERT_FALSE(starts.empty());
      const size_t last = starts.size() - 1;
      for (size_t i = 0; i < last; ++i) {
        EXPECT_EQ(starts[i], static_cast<int64_t>(static_cast<double>(i) * (80.0 / fps)));
        EXPECT_LE(starts[i] + kMelStepSize, columns);
      }
      EXPECT_EQ(starts[last], columns - kMelStepSize);
      // the tail chunk replaces the first start that would run past the end
      EXPECT_GT(static_cast<int64_t>(static_cast<double>(last) * (80.0 / fps)) + kMelStepSize, columns);
    }
  }
  EXPECT_THROW(mel_chunk_starts(15, 25.0), Error);
  EXPECT_THROW(mel_chunk_starts(100, 0.0), Error);
}

TEST(MelChunks, CopyTakesSixteenColumnsOfEveryBand) {
  Matrix mel{kMelBands, 40, {}};
  for (int r = 0; r < mel.rows; ++r)
    for (int c = 0; c < mel.cols; ++c) mel.data.push_back(static_cast<float>(r * 1000 + c));
  std::vector<float> chunk;
  copy_mel_chunk(mel, 7, chunk);
  ASSERT_EQ(chunk.size(), static_cast<size_t>(kMelBands * kMelStepSize));
  for (int r = 0; r < kMelBands; ++r)
    for (int c = 0; c < kMelStepSize; ++c) EXPECT_EQ(chunk[r * kMelStepSize + c], mel.at(r, 7 + c));
  EXPECT_THROW(copy_mel_chunk(mel, 25, chunk), Error);
  EXPECT_THROW(copy_mel_chunk(mel, -1, chunk), Error);
}

}  // namespace
}  // namespace heygem::media
