"""The numpy librosa shim (scripts/bench/shim) against the mel fixtures: alone, and through the
reference's own audio.py (needs the fetched reference, PEER)."""
import sys
import tempfile
import unittest
import wave
from pathlib import Path

from support import PEER, PEER_MISSING, SHIM, fixtures_root, load_fixture, require

# The limits of fixtures/README.md ("Recommended tolerances").
MEL_LIMIT = 1e-4
STFT_LIMIT_OVER_MAX = 1e-5
BASIS_LIMIT = 1e-6
# The reference's hparams.py for the mel front end (also recorded in fixtures/mel/manifest.json).
SR, N_FFT, HOP, WIN, N_MELS, FMIN, FMAX, PREEMPHASIS = 16000, 800, 200, 800, 80, 55, 7600, 0.97


def import_shim():
    require((fixtures_root() / "mel" / "manifest.json").is_file(), "needs the mel fixtures (HEYGEM_FIXTURES)")
    if str(SHIM) not in sys.path:
        sys.path.insert(0, str(SHIM))
    import librosa
    if Path(librosa.__file__).resolve().parent != (SHIM / "librosa").resolve():
        raise AssertionError(f"imported {librosa.__file__}, not the shim in {SHIM}")
    return librosa


def write_wav(path, rate, width=2, channels=1, frames=800):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels), out.setsampwidth(width), out.setframerate(rate)
        out.writeframes(b"\x00\x01" * (frames * channels * width // 2))


class ShimAloneTest(unittest.TestCase):
    """What the shim computes by itself, with the fixture's parameters."""

    @classmethod
    def setUpClass(cls):
        cls.librosa = import_shim()

    def test_load_reads_int16_over_32768_as_float32(self):
        import numpy as np
        wav, rate = self.librosa.core.load(str(fixtures_root() / "mel" / "audio.wav"), sr=SR)
        self.assertEqual((rate, wav.dtype.name, wav.shape), (SR, "float32", (47648,)))
        with wave.open(str(fixtures_root() / "mel" / "audio.wav"), "rb") as raw:
            ints = np.frombuffer(raw.readframes(raw.getnframes()), "<i2")
        self.assertTrue(np.array_equal(wav, ints.astype(np.float32) / np.float32(32768)))

    def test_mel_basis_matches_fixture(self):
        basis = self.librosa.filters.mel(SR, N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
        expected = load_fixture("mel", "mel_basis.f32")
        self.assertEqual((basis.dtype.name, basis.shape), ("float32", expected.shape))
        self.assertLessEqual(float(abs(basis - expected).max()), BASIS_LIMIT)

    def test_stft_magnitude_matches_fixture(self):
        import numpy as np
        wav, _ = self.librosa.core.load(str(fixtures_root() / "mel" / "audio.wav"), sr=SR)
        x = wav.astype(np.float64)
        emphasised = np.concatenate([x[:1], x[1:] - PREEMPHASIS * x[:-1]])  # README step 2, x[-1] = 0
        spectrum = self.librosa.stft(y=emphasised, n_fft=N_FFT, hop_length=HOP, win_length=WIN)
        self.assertEqual(spectrum.dtype.name, "complex64")  # librosa 0.7 stores the float64 FFT so
        expected = load_fixture("mel", "stft_mag.f32")
        self.assertEqual(spectrum.shape, expected.shape)
        self.assertLessEqual(float(abs(abs(spectrum) - expected).max()), STFT_LIMIT_OVER_MAX * float(expected.max()))

    def test_load_refuses_another_rate_naming_the_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rate8k.wav"
            write_wav(path, 8000)
            with self.assertRaisesRegex(ValueError, "rate8k.wav: sample rate 8000 Hz, but 16000 Hz .* does not resample"):
                self.librosa.core.load(str(path), sr=16000)

    def test_load_refuses_other_sample_widths_and_non_wav(self):
        with tempfile.TemporaryDirectory() as tmp:
            wide = Path(tmp) / "s24.wav"
            write_wav(wide, 16000, width=3)
            with self.assertRaisesRegex(ValueError, "s24.wav: 24-bit samples"):
                self.librosa.core.load(str(wide), sr=16000)
            other = Path(tmp) / "speech.mp3"
            other.write_bytes(b"ID3\x03\x00" + bytes(64))
            with self.assertRaisesRegex(ValueError, "speech.mp3: not a PCM WAV file"):
                self.librosa.core.load(str(other), sr=16000)

    def test_load_averages_stereo_to_mono(self):
        import numpy as np
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stereo.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(2), out.setsampwidth(2), out.setframerate(SR)
                out.writeframes(np.array([1000, 3000, -2000, 0], "<i2").tobytes())
            mono, _ = self.librosa.core.load(str(path), sr=SR)
            stereo, _ = self.librosa.core.load(str(path), sr=SR, mono=False)
        self.assertEqual(stereo.shape, (2, 2))
        self.assertTrue(np.array_equal(mono, np.array([2000, -1000], np.float32) / 32768))


class ShimThroughReferenceTest(unittest.TestCase):
    """The reference's own audio.py (unmodified) importing the shim as librosa."""

    @classmethod
    def setUpClass(cls):
        import_shim()
        require((PEER / "audio.py").is_file(), PEER_MISSING)
        try:
            import scipy.signal  # noqa: F401  (audio.py's pre-emphasis)
        except ImportError:
            raise unittest.SkipTest("the reference's audio.py needs scipy (Debian: python3-scipy)")
        if str(PEER) not in sys.path:
            sys.path.insert(1, str(PEER))
        import audio
        if Path(audio.__file__).resolve() != (PEER / "audio.py").resolve():
            raise AssertionError(f"imported {audio.__file__}, not the reference's audio.py in {PEER}")
        cls.audio = audio
        cls.wav = audio.load_wav(str(fixtures_root() / "mel" / "audio.wav"), 16000)

    def test_melspectrogram_matches_fixture(self):
        mel = self.audio.melspectrogram(self.wav)
        expected = load_fixture("mel", "mel.f32")
        self.assertEqual(mel.shape, expected.shape)
        self.assertLessEqual(float(abs(mel - expected).max()), MEL_LIMIT)

    def test_mel_basis_matches_fixture(self):
        basis = self.audio._build_mel_basis()
        self.assertEqual(basis.dtype.name, "float32")
        self.assertLessEqual(float(abs(basis - load_fixture("mel", "mel_basis.f32")).max()), BASIS_LIMIT)

    def test_stft_magnitude_matches_fixture(self):
        a = self.audio
        magnitude = abs(a._stft(a.preemphasis(self.wav, a.hp.preemphasis, a.hp.preemphasize)))
        expected = load_fixture("mel", "stft_mag.f32")
        self.assertEqual(magnitude.dtype.name, "float32")  # complex64 spectrum, as librosa 0.7
        self.assertLessEqual(float(abs(magnitude - expected).max()), STFT_LIMIT_OVER_MAX * float(expected.max()))

    def test_hparams_are_the_fixtures(self):
        import json
        recorded = json.loads((fixtures_root() / "mel" / "manifest.json").read_text())["meta"]["hparams"]
        for name, value in recorded.items():
            self.assertEqual(getattr(self.audio.hp, name), value, name)


if __name__ == "__main__":
    unittest.main()
