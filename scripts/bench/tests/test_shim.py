"""The numpy librosa shim (.bench/shim) against the mel fixtures, through the reference's audio.py."""
import sys
import tempfile
import unittest
import wave
from pathlib import Path

from support import PEER, SHIM, fixtures_root, load_fixture, require


class ShimMelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require((SHIM / "librosa").is_dir() and (PEER / "audio.py").is_file(), "needs .bench/shim and .bench/wav2lip-ref")
        require((fixtures_root() / "mel" / "manifest.json").is_file(), "needs the mel fixtures (HEYGEM_FIXTURES)")
        for path in (str(SHIM), str(PEER)):
            if path not in sys.path:
                sys.path.insert(0, path)
        import audio  # the reference's own front end, importing the shim as librosa
        cls.audio = audio
        cls.wav = audio.load_wav(str(fixtures_root() / "mel" / "audio.wav"), 16000)

    def test_melspectrogram_matches_fixture(self):
        mel = self.audio.melspectrogram(self.wav)
        expected = load_fixture("mel", "mel.f32")
        self.assertEqual(mel.shape, expected.shape)
        self.assertLessEqual(float(abs(mel - expected).max()), 1e-4)

    def test_mel_basis_matches_fixture(self):
        import librosa
        expected = load_fixture("mel", "mel_basis.f32")
        hp = self.audio.hp
        basis = librosa.filters.mel(hp.sample_rate, hp.n_fft, n_mels=hp.num_mels, fmin=hp.fmin, fmax=hp.fmax)
        self.assertEqual(basis.dtype.name, "float32")
        self.assertLessEqual(float(abs(basis - expected).max()), 1e-6)

    def test_stft_magnitude_matches_fixture(self):
        a = self.audio
        magnitude = abs(a._stft(a.preemphasis(self.wav, a.hp.preemphasis, a.hp.preemphasize)))
        expected = load_fixture("mel", "stft_mag.f32")
        self.assertEqual(magnitude.dtype.name, "float32")  # complex64 spectrum, as librosa 0.7
        self.assertLessEqual(float(abs(magnitude - expected).max()), 1e-5 * float(expected.max()))

    def test_load_refuses_another_rate_naming_the_file(self):
        import librosa
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rate8k.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
                out.writeframes(b"\x00\x01" * 800)
            with self.assertRaisesRegex(ValueError, "rate8k.wav: sample rate 8000 Hz"):
                librosa.core.load(str(path), sr=16000)


if __name__ == "__main__":
    unittest.main()
