"""Where the speaker comes from, one SpeakerFrame at a time (the `Source` protocol, contracts.py).

- IdleSource: before the user picks one: silence, no movement.
- PlaybackSource: a recorded interaction at the recording's own rate (play, pause, seek, loop).
- MicrophoneSource: a live 48 kHz stream pushed in by a capture callback: the server's microphone
  (sounddevice, `local_microphone`) or the browser's (the received WebRTC audio track).

Sources are read by the session's frame thread and steered from the event loop; each guards its
state with a lock. Nothing here looks ahead of the frame being read.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dyadic.datasets.interaction import Interaction
from dyadic.models.layout import ChannelLayout

from ..contracts import AUDIO_RATE, SpeakerFrame, audio_sample, frame_end

IDLE_FPS = 30.0


class IdleSource:
    """Before the user picks a source: silence, no movement; the listener idles."""

    kind = "none"
    fps = IDLE_FPS
    dataset = duration = position = None
    playing = loop = False
    underruns = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "fps": self.fps}

    def read(self, due: float) -> SpeakerFrame:
        return SpeakerFrame(np.zeros(frame_end(0, self.fps), np.float32), captured=due)

    def close(self) -> None:
        pass


# -- recorded ---------------------------------------------------------------------------------------
class PlaybackSource:
    """A recorded interaction, frame by frame at its own rate: one read() per session frame."""

    kind = "clip"
    underruns = 0

    def __init__(self, interaction: Interaction, layout: ChannelLayout | None = None, loop: bool = True):
        self.interaction = interaction
        self.fps = interaction.fps
        self.n_frames = interaction.n_frames
        self._audio = interaction.speaker.audio()
        self._movement: np.ndarray | None = None
        self._valid: np.ndarray | None = None
        if layout is not None and layout.spec_name == interaction.dataset:
            values, valid = layout.flatten(interaction.speaker, self.n_frames)
            self._movement, self._valid = values, valid.astype(np.float32)
        self._lock = threading.Lock()
        self._frame = 0
        self.playing = True
        self.loop = loop

    @property
    def id(self) -> str:
        return self.interaction.id

    @property
    def dataset(self) -> str:
        return self.interaction.dataset

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def position(self) -> float:
        return self._frame / self.fps

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "clip": self.id, "dataset": self.interaction.dataset, "fps": self.fps}

    def play(self) -> None:
        with self._lock:
            if self._frame >= self.n_frames:
                self._frame = 0
            self.playing = True

    def pause(self) -> None:
        with self._lock:
            self.playing = False

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._frame = min(self.n_frames - 1, max(0, int(round(seconds * self.fps))))

    def set_loop(self, on: bool) -> None:
        with self._lock:
            self.loop = on

    def read(self, due: float) -> SpeakerFrame:
        """The next frame: advances while playing; paused, the speaker holds still in silence."""
        with self._lock:
            k = min(self._frame, self.n_frames - 1)
            s0, s1 = audio_sample(k, self.fps), frame_end(k, self.fps)
            if self.playing:
                audio = np.zeros(s1 - s0, np.float32)
                chunk = self._audio[s0:s1]
                audio[: len(chunk)] = chunk
                self._frame += 1
                if self._frame >= self.n_frames:
                    if self.loop:
                        self._frame = 0
                    else:
                        self._frame, self.playing = self.n_frames, False
            else:
                audio = np.zeros(s1 - s0, np.float32)
        movement = valid = None
        if self._movement is not None and self._valid is not None:
            movement, valid = self._movement[k], self._valid[k]
        return SpeakerFrame(
            audio,
            captured=due,
            channels=self.interaction.speaker.frame(k),
            movement=movement,
            movement_valid=valid,
            recorded_listener=self.interaction.listener.frame(k),
            position=k / self.fps,
        )

    def close(self) -> None:
        pass


# -- live audio -------------------------------------------------------------------------------------
class MicrophoneSource:
    """A live 48 kHz mono stream. A capture thread (or task) calls push(); the frame thread
    reads one frame's samples per read().

    The capture and the session clock run on different crystals, so the backlog drifts: it is held
    under `max_backlog_s` by trimming the oldest samples (counted), so the latency of a live source
    cannot grow. What stays queued after a read is latency: the default holds one frame (33 ms)
    and a browser's 20 ms audio packet (it was 150 ms, which kept ~100 ms queued: BENCHMARKS.md,
    issue 4, session 8). When the capture is late, read() waits up to `wait_s` and then pads
    with silence (counted as an underrun) rather than stall the frame."""

    dataset = None  # audio only

    def __init__(
        self,
        kind: str,
        fps: float = 30.0,
        max_backlog_s: float = 0.055,
        wait_s: float = 0.02,
        close: Callable[[], None] | None = None,
    ):
        self.kind = kind
        self.fps = fps
        self._buf: collections.deque[np.ndarray] = collections.deque()
        self._level = 0
        self._cond = threading.Condition()
        self._max_backlog = int(max_backlog_s * AUDIO_RATE)
        self._wait_s = wait_s
        self._frame = 0
        self._last_push: float | None = None
        self._close = close
        self.underruns = 0
        self.trimmed_samples = 0
        self.playing = True
        self.loop = False
        self._loudness: collections.deque[float] = collections.deque(maxlen=max(1, round(fps)))  # mean squares

    @property
    def duration(self) -> None:
        return None

    @property
    def position(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """With the loudness of the last second heard, in dBFS (about -120 in silence; None before the first frame),
        so that the page can show the voice reaches the server."""
        level = None if not self._loudness else round(10 * math.log10(max(self._loudness) + 1e-12), 1)
        return {"kind": self.kind, "fps": self.fps, "level_dbfs": level}

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        with self._cond:
            self._buf.append(samples)
            self._level += len(samples)
            self._last_push = time.monotonic()
            excess = self._level - self._max_backlog
            while excess > 0 and self._buf:
                head = self._buf[0]
                cut = min(len(head), excess)
                self._buf[0] = head[cut:]
                if not len(self._buf[0]):
                    self._buf.popleft()
                self._level -= cut
                self.trimmed_samples += cut
                excess -= cut
            self._cond.notify_all()

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        got = 0
        while got < n and self._buf:
            head = self._buf[0]
            m = min(n - got, len(head))
            out[got : got + m] = head[:m]
            got += m
            if m == len(head):
                self._buf.popleft()
            else:
                self._buf[0] = head[m:]
        self._level -= got
        return out

    def read(self, due: float) -> SpeakerFrame:
        n = frame_end(self._frame, self.fps) - audio_sample(self._frame, self.fps)
        self._frame += 1
        with self._cond:
            if self._level < n:
                self._cond.wait_for(lambda: self._level >= n, timeout=self._wait_s)
            short = self._level < n
            if short:
                self.underruns += 1
            audio = self._take(n)
            self._loudness.append(float(np.dot(audio, audio)) / n)
            # the content time of the last sample taken: the newest push's arrival minus what is
            # still queued behind it (it drives video pts and the audio clock, webrtc/tracks.py); padded
            # with silence, the frame simply ends when it is due
            captured = due if short or self._last_push is None else self._last_push - self._level / AUDIO_RATE
        return SpeakerFrame(audio, captured=captured)

    # playback controls do not apply to a live stream
    def play(self) -> None:
        pass

    pause = play

    def seek(self, seconds: float) -> None:
        raise ValueError("seek: the source is live")

    def set_loop(self, on: bool) -> None:
        raise ValueError("loop: the source is live")

    def close(self) -> None:
        if self._close is not None:
            self._close()


class MicrophoneUnavailable(RuntimeError):
    """No local microphone: PortAudio or an input device is missing."""


def local_microphone_problem() -> str | None:
    """Why this machine's microphone cannot be a source (None: it can), so that a page does not
    offer what the server cannot do."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        return f"sounddevice/PortAudio is not usable here ({exc})"
    try:
        sd.query_devices(None, "input")
    except Exception as exc:  # sounddevice raises ValueError/PortAudioError when there is none
        return f"no input device ({exc})"
    return None


def local_microphone(fps: float = 30.0, device: int | str | None = None) -> MicrophoneSource:
    """The server's microphone through sounddevice (imported here: it raises OSError without
    PortAudio, and most servers have no microphone)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise MicrophoneUnavailable(
            f"local microphone: sounddevice/PortAudio is not usable here ({exc}); "
            "install libportaudio2 and the 'audio' extra"
        ) from None
    try:
        info = sd.query_devices(device, "input")
    except Exception as exc:  # sounddevice raises ValueError/PortAudioError for a missing device
        raise MicrophoneUnavailable(f"local microphone: no input device ({exc})") from None
    source: MicrophoneSource

    def callback(indata: np.ndarray, frames: int, time_info: Any, status: sd.CallbackFlags) -> None:
        source.push(indata[:, 0])

    try:
        stream = sd.InputStream(
            samplerate=AUDIO_RATE,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=AUDIO_RATE // 100,
            callback=callback,
        )
    except Exception as exc:
        raise MicrophoneUnavailable(f"local microphone {info.get('name', device)!r}: {exc}") from None

    def close() -> None:
        stream.stop()
        stream.close()

    source = MicrophoneSource("local-mic", fps, close=close)
    stream.start()
    return source
