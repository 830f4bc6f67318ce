// Mel parity with shared/fixtures/mel (and the e2e folder's mel): the Wav2Lip audio front end fed by
// our own WAV reader. Sizes, rates and tolerances' subjects come from the manifests.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "daemon/media/audio_reader.hpp"
#include "daemon/media/mel.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::media {
namespace {

using heygem::test::load_raw;
using heygem::test::manifest;
using heygem::test::max_abs;
using heygem::test::max_abs_diff;

// gtest's RecordProperty takes strings or ints only.
std::string as_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

std::vector<float> fixture_audio(const std::string& folder) {
  return load_audio_16k_mono(heygem::test::fixtures_root() / folder / "audio.wav");
}

void expect_shape(const Matrix& m, const heygem::test::RawTensor& expected) {
  ASSERT_EQ(expected.shape.size(), 2u);
  EXPECT_EQ(m.rows, expected.shape[0]);
  EXPECT_EQ(m.cols, expected.shape[1]);
}

TEST(MelParity, FilterbankMatches) {
  const auto expected = load_raw("mel", "mel_basis.f32");
  const Matrix basis = mel_filterbank();
  expect_shape(basis, expected);
  const double diff = max_abs_diff(basis.data, expected.f32);
  RecordProperty("max_abs_diff", as_text(diff));
  EXPECT_LE(diff, 1e-6);
}

TEST(MelParity, StftMagnitudeMatches) {
  const auto samples = fixture_audio("mel");
  EXPECT_EQ(static_cast<int64_t>(samples.size()), manifest("mel").at("meta").at("num_samples").get<int64_t>());
  const auto expected = load_raw("mel", "stft_mag.f32");
  const Matrix magnitude = stft_magnitude(samples);
  expect_shape(magnitude, expected);
  const double relative = max_abs_diff(magnitude.data, expected.f32) / max_abs(expected.f32);
  RecordProperty("max_abs_diff_over_max", as_text(relative));
  EXPECT_LE(relative, 1e-5);
}

TEST(MelParity, MelSpectrogramMatches) {
  for (const std::string folder : {"mel", "e2e"}) {
    SCOPED_TRACE(folder);
    const auto expected = load_raw(folder, "mel.f32");
    const Matrix mel = melspectrogram(fixture_audio(folder));
    expect_shape(mel, expected);
    EXPECT_EQ(mel.cols, manifest(folder).at("meta").at("num_mel_frames").get<int>());
    const double diff = max_abs_diff(mel.data, expected.f32);
    RecordProperty(folder + "_max_abs_diff", as_text(diff));
    EXPECT_LE(diff, 1e-4);
  }
}

TEST(MelParity, ChunkStartsMatchExactly) {
  for (const std::string folder : {"mel", "e2e"}) {
    SCOPED_TRACE(folder);
    const auto meta = manifest(folder).at("meta");
    const auto expected = load_raw(folder, "mel_chunk_starts.i64");
    const auto starts = mel_chunk_starts(meta.at("num_mel_frames").get<int64_t>(), meta.at("fps").get<double>());
    EXPECT_EQ(static_cast<int64_t>(starts.size()), meta.at("num_output_frames").get<int64_t>());
    EXPECT_EQ(starts, expected.i64);
  }
}

}  // namespace
}  // namespace heygem::media
