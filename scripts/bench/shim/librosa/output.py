"""librosa.output.write_wav as in librosa 0.7: the samples written as they are (float data gives
an IEEE-float WAV), optionally peak-normalised first."""
import numpy as np

from .util import normalize, valid_audio


def write_wav(path, y, sr, norm=False):
    from scipy.io import wavfile  # audio.py itself imports scipy; nothing else in the shim needs it
    valid_audio(y, mono=False)
    wav = normalize(y, norm=np.inf, axis=None) if norm and np.issubdtype(y.dtype, np.floating) else y
    if wav.ndim > 1 and wav.shape[0] == 2:
        wav = wav.T  # (samples, channels), the layout wavfile expects
    wavfile.write(path, sr, wav)
