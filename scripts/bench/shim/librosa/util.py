"""librosa.util: the input checks and the normalisation the rest of the shim needs."""
import numpy as np


class ParameterError(Exception):
    """Raised for invalid arguments, as librosa's own ParameterError."""


def valid_audio(y, mono=True):
    """librosa 0.7's check: a finite floating-point array, 1-D when mono (else 1-D or 2-D)."""
    if not isinstance(y, np.ndarray):
        raise ParameterError("audio data must be of type numpy.ndarray")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"audio data must be floating-point, not {y.dtype}")
    if mono and y.ndim != 1:
        raise ParameterError(f"invalid shape for monophonic audio: ndim={y.ndim}, shape={y.shape}")
    if y.ndim > 2 or y.ndim == 0:
        raise ParameterError(f"audio data must have shape (samples,) or (channels, samples); got {y.shape}")
    if not np.isfinite(y).all():
        raise ParameterError("audio buffer is not finite everywhere")
    return True


def normalize(y, norm=np.inf, axis=None, threshold=None):
    """Scale y so that its maximum magnitude is 1 (only the infinity norm, which write_wav uses);
    an all-(near-)zero signal is left as it is."""
    if norm != np.inf:
        raise ParameterError(f"this stand-in only implements norm=np.inf, not {norm!r}")
    if threshold is None:
        threshold = np.finfo(y.dtype).tiny if np.issubdtype(y.dtype, np.floating) else np.finfo(np.float32).tiny
    length = np.max(np.abs(y), axis=axis, keepdims=True)
    length = np.where(length < threshold, 1.0, length)
    return y / length
