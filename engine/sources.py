"""Where the speaker comes from, one frame at a time (DESIGN.md section 3, SpeakerFrame).

- PlaybackSource: a recorded interaction at the recording's own rate (play, pause, seek, loop).
- MicrophoneSource: a live 48 kHz stream pushed in by a capture callback: the server's microphone
  (sounddevice, `local_microphone`) or the browser's (the received WebRTC audio track).
- MovementInbox: speaker movement frames pushed by an outside tracker over the websocket.

Sources are read by the session's frame thread and steered from the event loop; each guards its
state with a lock. Nothing here looks ahead of the frame being read.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from dyadic.datasets.interaction import AUDIO_RATE, Interaction, audio_sample
from dyadic.renderer.adapters import adapter_for, frame_channels
from dyadic.renderer.pose import AvatarPose

MOVEMENT_MAX_AGE_S = 0.5  # a pushed movement frame older than this counts as absent (masked)


@dataclass
class SpeakerFrame:
    """The speaker during one session frame."""

    audio: np.ndarray  # float32 mono 48 kHz samples of this frame (silence while paused)
    captured: float  # time.monotonic() when the frame's last audio sample was captured or due
    movement: np.ndarray | None = None  # (C,) dataset units in the model's channel layout
    movement_valid: np.ndarray | None = None  # (G,) 1 valid / 0 masked
    speaker_pose: AvatarPose | None = None  # what the speaker avatar shows (recorded poses)
    position: float | None = None  # seconds into the recording


# -- recorded ---------------------------------------------------------------------------------------
class PlaybackSource:
    """A recorded interaction, frame by frame at its own rate: one read() per session frame."""

    kind = "clip"

    def __init__(self, interaction: Interaction, layout=None, loop: bool = True):
        self.interaction = interaction
        self.fps = interaction.fps
        self.n_frames = interaction.n_frames
        self._audio = interaction.speaker.audio()
        self._adapt = adapter_for(interaction.dataset)
        self._channels = interaction.speaker.channels
        self._movement = self._valid = None
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
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def position(self) -> float:
        return self._frame / self.fps

    def describe(self) -> dict:
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
            s0, s1 = audio_sample(k, self.fps), audio_sample(k + 1, self.fps)
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
        frame = SpeakerFrame(
            audio, captured=due, position=k / self.fps, speaker_pose=self._adapt(frame_channels(self._channels, k))
        )
        if self._movement is not None:
            frame.movement, frame.movement_valid = self._movement[k], self._valid[k]
        return frame

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

    def __init__(self, kind: str, fps: float = 30.0, max_backlog_s: float = 0.055, wait_s: float = 0.02, close=None):
        self.kind = kind
        self.fps = fps
        self._buf: collections.deque[np.ndarray] = collections.deque()
        self._level = 0
        self._cond = threading.Condition()
        self._max_backlog = int(max_backlog_s * AUDIO_RATE)
        self._wait_s = wait_s
        self._frame = 0
        self._last_push = None
        self._close = close
        self.underruns = 0
        self.trimmed_samples = 0
        self.playing = True
        self.loop = False

    @property
    def duration(self) -> None:
        return None

    @property
    def position(self) -> None:
        return None

    def describe(self) -> dict:
        return {"kind": self.kind, "fps": self.fps}

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
        n = audio_sample(self._frame + 1, self.fps) - audio_sample(self._frame, self.fps)
        self._frame += 1
        with self._cond:
            if self._level < n:
                self._cond.wait_for(lambda: self._level >= n, timeout=self._wait_s)
            short = self._level < n
            if short:
                self.underruns += 1
            audio = self._take(n)
            # the content time of the last sample taken: the newest push's arrival minus what is
            # still queued behind it (it drives video pts and the audio clock, tracks.py); padded
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


def local_microphone(fps: float = 30.0, device=None) -> MicrophoneSource:
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

    def callback(indata, frames, time_info, status):
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
    source = MicrophoneSource("local-mic", fps, close=lambda: (stream.stop(), stream.close()))
    stream.start()
    return source


# -- pushed movement --------------------------------------------------------------------------------
class MovementInbox:
    """The latest speaker movement frame pushed by a tracker, in a model's channel layout."""

    def __init__(self, layout):
        self.layout = layout
        self._lock = threading.Lock()
        self._frame: tuple[np.ndarray, np.ndarray, float] | None = None

    def describe(self) -> dict:
        return {
            "dataset": self.layout.spec_name,
            "size": self.layout.size,
            "groups": [{"name": n, "shape": list(s)} for n, s in zip(self.layout.names, self.layout.shapes)],
        }

    def push_channels(self, channels: dict) -> None:
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
