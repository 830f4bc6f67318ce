// load_audio_16k_mono: bit-exact pass-through of 16 kHz mono s16, the same samples as the ffmpeg
// CLI's `-ac 1 -ar 16000` for other inputs, and the error cases.
#include <gtest/gtest.h>

#include "common/errors.hpp"
#include "daemon/media/audio_reader.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::media {
namespace {

std::vector<float> as_float(const std::vector<int16_t>& samples) {
  std::vector<float> out;
  for (int16_t s : samples) out.push_back(static_cast<float>(s) / 32768.0f);
  return out;
}

template <typename Body>
void expect_input_error(const std::filesystem::path& file, const std::string& cause, Body body) {
  try {
    body();
    ADD_FAILURE() << "no error for " << file;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_input) << error.what();
    const std::string message = error.what();
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find(cause), std::string::npos) << "expected \"" << cause << "\" in: " << message;
  }
}

TEST(AudioReader, SixteenKilohertzMonoWavPassesThroughBitExactly) {
  const auto wav = heygem::test::fixtures_root() / "mel" / "audio.wav";
  const auto expected = as_float(test::read_wav_s16(wav));
  const auto samples = load_audio_16k_mono(wav);
  EXPECT_EQ(static_cast<int64_t>(samples.size()), heygem::test::manifest("mel").at("meta").at("num_samples").get<int64_t>());
  ASSERT_EQ(samples.size(), expected.size());
  EXPECT_EQ(samples, expected);
}

// The e2e fixture's WAV was made from a GRID clip with `ffmpeg -ac 1 -ar 16000`: reading the clip
// itself must give the same samples.
TEST(AudioReader, GridClipAudioEqualsTheCliResample) {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  const auto clip = heygem::test::shared_root() / "media" / "grid" / (meta.at("audio_clips").at(0).get<std::string>() + ".mpg");
  const auto expected = as_float(test::read_wav_s16(heygem::test::fixtures_root() / "e2e" / "audio.wav"));
  const auto samples = load_audio_16k_mono(clip);
  ASSERT_EQ(samples.size(), expected.size());
  EXPECT_EQ(samples, expected);
}

TEST(AudioReader, DurationLimit) {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  const auto clip = heygem::test::shared_root() / "media" / "grid" / (meta.at("audio_clips").at(0).get<std::string>() + ".mpg");
  MediaLimits limits;
  limits.max_duration_seconds = 1.0;
  expect_input_error(clip, "over the limit", [&] { load_audio_16k_mono(clip, limits); });
}

TEST(AudioReader, ZeroLengthAudioIsAnError) {
  test::ScratchDir dir;
  const auto empty = dir / "silence.wav";
  test::write_wav_s16(empty, {}, 16000, 1);
  expect_input_error(empty, "empty", [&] { load_audio_16k_mono(empty); });
  const auto missing = dir / "missing.wav";
  expect_input_error(missing, "no such file", [&] { load_audio_16k_mono(missing); });
}

class SyntheticAudio : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::ffmpeg_available()) GTEST_SKIP() << "the ffmpeg CLI is needed to generate the synthetic inputs";
  }
  test::ScratchDir dir_;
};

TEST_F(SyntheticAudio, DownmixAndResampleEqualTheCli) {
  struct Case {
    const char* name;
    const char* arguments;
  };
  const Case cases[] = {
      {"stereo44k.wav", "-f lavfi -i sine=f=440:r=44100:d=1 -f lavfi -i sine=f=1000:r=44100:d=1 -filter_complex amerge -c:a pcm_s16le"},
      {"mono48k.flac", "-f lavfi -i sine=f=300:r=48000:d=0.7"},
      {"stereo.m4a", "-f lavfi -i sine=f=500:r=44100:d=0.8 -ac 2 -c:a aac"},
      {"mono8k.wav", "-f lavfi -i sine=f=200:r=8000:d=0.5 -c:a pcm_s16le"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto file = dir_ / c.name;
    test::run_ffmpeg(std::string(c.arguments) + " '" + file.string() + "'");
    const auto expected = as_float(test::ffmpeg_decode_mono16k(file));
    const auto samples = load_audio_16k_mono(file);
    ASSERT_FALSE(samples.empty());
    ASSERT_EQ(samples.size(), expected.size());
    EXPECT_EQ(samples, expected);
  }
}

TEST_F(SyntheticAudio, AudioTrackOfAVideo) {
  const auto file = dir_ / "with_audio.mp4";
  test::run_ffmpeg("-f lavfi -i testsrc=s=64x48:r=10:d=1 -f lavfi -i sine=f=440:r=48000:d=1 -c:v libx264 -preset ultrafast -c:a aac -shortest '" +
                   file.string() + "'");
  const auto samples = load_audio_16k_mono(file);
  EXPECT_NEAR(static_cast<double>(samples.size()), 16000.0, 16000.0 * 0.1);
  EXPECT_EQ(samples, as_float(test::ffmpeg_decode_mono16k(file)));
}

TEST_F(SyntheticAudio, VideoWithoutAudioIsAnError) {
  const auto file = dir_ / "silent.mp4";
  test::run_ffmpeg("-f lavfi -i testsrc=s=64x48:r=10 -frames:v 3 -c:v libx264 -preset ultrafast '" + file.string() + "'");
  expect_input_error(file, "no audio stream", [&] { load_audio_16k_mono(file); });
}

}  // namespace
}  // namespace heygem::media
