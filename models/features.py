"""Causal audio features: one log-mel frame per video frame, from the 48 kHz samples heard so far.

Frame k of a clip at `fps` covers samples [audio_sample(k), frame_end(k)) (datasets/interaction.py).
Its feature is the log-mel spectrum of the WINDOW samples that END at the frame's last sample (zero
before the clip starts), so it never needs a sample of frame k+1: the feature of frame k is ready
the moment the frame's audio has arrived.

One function (`_log_mel`) turns windows into features; training (`log_mel_frames`, a whole clip)
and streaming (`StreamingLogMel`, samples as they come) both call it, so the model sees the same
numbers live as in training (tested).

Written here with numpy's FFT rather than taken from torchaudio or librosa: neither is a dependency
of this project, and a Hann window, an rfft and a triangular mel filterbank are a few lines.
"""

from __future__ import annotations

import math

import numpy as np

from dyadic.datasets.interaction import AUDIO_RATE, frame_end

WINDOW = 2048  # 42.7 ms: longer than one frame at >= 24 fps, so every sample is heard
N_MELS = 40
F_MIN, F_MAX = 60.0, 8_000.0  # speech band
LOG_FLOOR = 1e-8  # power floor: digital silence gives log(1e-8), not -inf


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int = N_MELS, window: int = WINDOW, rate: int = AUDIO_RATE, f_min: float = F_MIN, f_max: float = F_MAX
) -> np.ndarray:
    """(window//2 + 1, n_mels) triangular filters (HTK mel scale), each normalised to unit area."""
    bins = np.fft.rfftfreq(window, 1.0 / rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    tri /= np.maximum(tri.sum(axis=1, keepdims=True), 1e-12)
    return tri.T.astype(np.float32)


_HANN = np.hanning(WINDOW).astype(np.float32)
_MELS = mel_filterbank()


def _log_mel(windows: np.ndarray) -> np.ndarray:
    """(n, WINDOW) float32 samples -> (n, N_MELS) float32 log-mel power."""
    spectrum = np.fft.rfft(windows * _HANN, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    # one row at a time: a matrix product over many rows may sum in another order than over one,
    # and streaming must give exactly what training saw
    mel = np.stack([row @ _MELS for row in power]) if len(power) else np.zeros((0, N_MELS), np.float32)
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def log_mel_frames(audio: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """(n_frames, N_MELS) features of a whole clip; frames past the audio's end hear silence."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if n_frames is None:
        n_frames = int(math.floor(len(audio) * fps / AUDIO_RATE + 1e-9))
    ends = np.array([frame_end(k, fps) for k in range(n_frames)], np.int64)
    padded = np.concatenate(
        [np.zeros(WINDOW, np.float32), audio, np.zeros(max(0, int(ends.max(initial=0)) - len(audio)), np.float32)]
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[ends]  # ends shift by WINDOW
    return _log_mel(np.ascontiguousarray(windows))


class StreamingLogMel:
    """Features of a live stream: push() samples as they arrive, get the frames they complete."""

    def __init__(self, fps: float):
        self.fps = float(fps)
        self.frame = 0  # next frame to emit
        self._received = 0  # samples received so far
        self._history = np.zeros(WINDOW, np.float32)  # the WINDOW samples before `_received`

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append mono 48 kHz samples; returns (n, N_MELS) for every frame they complete."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        buf = np.concatenate([self._history, samples])
        start = self._received - WINDOW  # absolute index of buf[0]
        self._received += len(samples)
        windows = []
        while (end := frame_end(self.frame, self.fps)) <= self._received:
            windows.append(buf[end - WINDOW - start : end - start])
            self.frame += 1
        self._history = buf[-WINDOW:].copy()
        if not windows:
            return np.zeros((0, N_MELS), np.float32)
        return _log_mel(np.stack(windows))
