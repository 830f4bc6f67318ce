"""A numpy stand-in for the part of librosa 0.7 that Wav2Lip's audio.py uses (the benchmark's peer
runs where librosa cannot be installed): core.load for PCM WAV at its own rate, stft, filters.mel and
output.write_wav, with librosa 0.7's dtypes (float64 FFT stored as complex64, float32 filterbank).
See docs/bench.md; the mel fixtures check it (scripts/bench/tests/test_shim.py)."""
from . import core, filters, output, util
from .core import load, stft
from .util import ParameterError

__version__ = "0.7.2+heygem-shim"
