"""Speaker movement pushed by an outside tracker over the websocket, one frame at a time.

The newest frame wins; one older than MOVEMENT_MAX_AGE_S counts as absent (masked), so a tracker
that stops does not freeze the model's input. Pushed from the event loop, read by the frame thread.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from dyadic.models.layout import ChannelLayout

from ..contracts import SpeakerFrame

MOVEMENT_MAX_AGE_S = 0.5  # a pushed movement frame older than this counts as absent (masked)


class MovementInbox:
    """The latest speaker movement frame pushed by a tracker, in a model's channel layout."""

    def __init__(self, layout: ChannelLayout):
        self.layout = layout
        self._lock = threading.Lock()
        self._frame: tuple[np.ndarray, np.ndarray, float] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.layout.spec_name,
            "size": self.layout.size,
            "groups": [{"name": n, "shape": list(s)} for n, s in zip(self.layout.names, self.layout.shapes)],
        }

    def push_channels(self, channels: dict[str, Any]) -> None:
        """JSON form: {group: nested list of the group's shape}; groups left out are masked."""
        values = np.zeros(self.layout.size, np.float32)
        valid = np.zeros(len(self.layout.names), np.float32)
        unknown = sorted(set(channels) - set(self.layout.names))
        if unknown:
            raise ValueError(
                f"movement: unknown channel group(s) {', '.join(unknown)} "
                f"(this model takes {', '.join(self.layout.names)})"
            )
        for g, (name, sl) in enumerate(self.layout.slices.items()):
            if name not in channels:
                continue
            try:
                arr = np.asarray(channels[name], np.float32)
            except (TypeError, ValueError):
                raise ValueError(f"movement: group {name} must be numbers") from None
            if arr.shape != tuple(self.layout.shapes[g]):
                raise ValueError(
                    f"movement: group {name} has shape {list(arr.shape)}, expected {list(self.layout.shapes[g])}"
                )
            values[sl] = arr.reshape(-1)
            valid[g] = 1.0
        self._store(values, valid)

    def push_binary(self, data: bytes) -> None:
        """Binary form: float32 little-endian x C, optionally followed by G validity values."""
        c, g = self.layout.size, len(self.layout.names)
        if len(data) % 4 or len(data) // 4 not in (c, c + g):
            raise ValueError(
                f"movement: a binary frame must be {c} or {c + g} float32 values "
                f"({4 * c} or {4 * (c + g)} bytes), got {len(data)} bytes"
            )
        arr = np.frombuffer(data, "<f4").astype(np.float32)
        valid = arr[c:] if len(arr) > c else np.ones(g, np.float32)
        self._store(arr[:c].copy(), (valid > 0.5).astype(np.float32))

    def _store(self, values: np.ndarray, valid: np.ndarray) -> None:
        if not np.isfinite(values).all():
            raise ValueError("movement: values must be finite")
        with self._lock:
            self._frame = (values, valid, time.monotonic())

    def latest(self, now: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            frame = self._frame
        if frame is None or (now or time.monotonic()) - frame[2] > MOVEMENT_MAX_AGE_S:
            return None
        return frame[0], frame[1]

    def merge(self, frame: SpeakerFrame, now: float) -> SpeakerFrame:
        """`frame` with the latest pushed movement as the model's input, if one is fresh; its
        channels also become the speaker's, when the source has none of its own (a microphone)."""
        pushed = self.latest(now)
        if pushed is None:
            return frame
        values, valid = pushed
        channels = frame.channels if frame.channels is not None else self.layout.unflatten(values)
        return dataclasses.replace(frame, movement=values, movement_valid=valid, channels=channels)
