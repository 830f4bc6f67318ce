"""librosa.core: load (PCM WAV only, no resampling) and stft, with librosa 0.7's dtypes."""
import wave

import numpy as np

from .util import ParameterError, valid_audio


def load(path, sr=22050, mono=True, offset=0.0, duration=None, dtype=np.float32, res_type="kaiser_best"):
    """Read a 16-bit PCM WAV as librosa 0.7 does: int16 / 32768 in `dtype`, channels averaged when
    mono. There is no resampler here: the file must already be at `sr` (or pass sr=None)."""
    path = str(path)
    try:
        with wave.open(path, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if width != 2:
                raise ValueError(f"{path}: {8 * width}-bit samples; this librosa stand-in reads 16-bit PCM WAV only "
                                 f"(convert with ffmpeg -c:a pcm_s16le)")
            if sr is not None and rate != sr:
                raise ValueError(f"{path}: sample rate {rate} Hz, but {sr} Hz was asked for; this librosa stand-in "
                                 f"does not resample (convert with ffmpeg -ar {sr})")
            start = int(offset * rate)
            if start > wav.getnframes():
                raise ValueError(f"{path}: offset {offset} s is past the end ({wav.getnframes() / rate:.3f} s)")
            wav.setpos(start)
            count = wav.getnframes() - start if duration is None else min(int(duration * rate), wav.getnframes() - start)
            data = wav.readframes(count)
    except wave.Error as error:
        raise ValueError(f"{path}: not a PCM WAV file this librosa stand-in can read ({error}); "
                         f"convert with ffmpeg -ac 1 -c:a pcm_s16le") from None
    y = np.frombuffer(data, dtype="<i2").astype(dtype) * (1.0 / 32768.0)
    y = y.astype(dtype, copy=False)
    if channels > 1:
        y = y.reshape(-1, channels).T
        if mono:
            y = np.mean(y, axis=0).astype(dtype, copy=False)
    return y, rate


def _hann_periodic(length):
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def stft(y, n_fft=2048, hop_length=None, win_length=None, window="hann", center=True, dtype=np.complex64,
         pad_mode="reflect"):
    """Short-time Fourier transform as librosa 0.7: periodic Hann window (centred in n_fft when
    shorter), reflect padding by n_fft // 2 when centred, float64 real FFT per frame, stored in
    `dtype` (complex64 by default). Returns (1 + n_fft // 2, frames)."""
    if win_length is None:
        win_length = n_fft
    if hop_length is None:
        hop_length = int(win_length // 4)
    if window == "hann":
        fft_window = _hann_periodic(win_length)
    elif isinstance(window, np.ndarray) and window.shape == (win_length,):
        fft_window = window.astype(np.float64)
    else:
        raise ParameterError(f"this librosa stand-in supports window='hann' or an array of length {win_length}, "
                             f"not {window!r}")
    if win_length > n_fft:
        raise ParameterError(f"win_length {win_length} exceeds n_fft {n_fft}")
    left = (n_fft - win_length) // 2
    fft_window = np.pad(fft_window, (left, n_fft - win_length - left)).reshape(-1, 1)

    valid_audio(y)
    y = np.ascontiguousarray(y)
    if center:
        y = np.pad(y, int(n_fft // 2), mode=pad_mode)
    if len(y) < n_fft:
        raise ParameterError(f"input is too short (n={len(y)}) for n_fft={n_fft}")
    frames = 1 + (len(y) - n_fft) // hop_length
    # (n_fft, frames) view of the overlapping frames, frame t starting at t * hop_length
    y_frames = np.lib.stride_tricks.as_strided(y, shape=(n_fft, frames),
                                               strides=(y.itemsize, hop_length * y.itemsize))
    spectrum = np.empty((1 + n_fft // 2, frames), dtype=dtype, order="F")
    block = max(1, (1 << 18) // (spectrum.shape[0] * spectrum.itemsize))  # bounded float64 temporaries
    for first in range(0, frames, block):
        last = min(first + block, frames)
        spectrum[:, first:last] = np.fft.rfft(fft_window * y_frames[:, first:last], axis=0)
    return spectrum
