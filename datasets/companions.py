"""The media beside the motion files, checked from their headers: is a WAV usable, and what frame
rate does an MP4 give. Both readers use these, so a broken companion reads the same in either
format: one problem line naming the file, and the interaction loads without that part.
"""

from __future__ import annotations

import av

from . import media
from .files import FileRef

FALLBACK_FPS = 30.0
FPS_RANGE = (10.0, 120.0)  # camera rates of recorded conversations; outside it a header is corrupt
DURATION_TOLERANCE_S = 0.5  # the Seamless pre-release loader's accepted feature/audio mismatch


def read_fps(ref: FileRef | None, file_id: str) -> tuple[float, list[str]]:
    """The MP4's average frame rate; 30 with a problem line when the video is missing, empty or
    claims a rate no camera of a conversation records at."""
    if ref is None:
        return FALLBACK_FPS, [f"{file_id}.mp4: missing: frame rate taken as 30"]
    try:
        with ref.open() as stream:
            rate = float(media.video_rate(stream))
    except Exception as exc:  # PyAV raises several error types for broken files
        return FALLBACK_FPS, [f"{ref.name}: no frame rate ({exc}): taken as 30"]
    low, high = FPS_RANGE
    if not low <= rate <= high:
        return FALLBACK_FPS, [f"{ref.name}: frame rate {rate:g} is outside {low:g}-{high:g}: taken as 30"]
    return rate, []


def audio_problems(ref: FileRef | None, file_id: str, duration: float) -> tuple[bool, list[str]]:
    """(usable, problems) for the WAV, from its header only."""
    if ref is None:
        return False, [f"{file_id}.wav: missing: no audio"]
    try:
        with ref.open() as stream, av.open(stream) as container:
            if not container.streams.audio:
                return False, [f"{ref.name}: no audio stream: no audio"]
            audio = container.streams.audio[0]
            channels, rate = audio.codec_context.channels, audio.codec_context.sample_rate
            assert audio.time_base is not None  # always set on a demuxed stream
            seconds = float(audio.duration * audio.time_base) if audio.duration else 0.0
    except Exception as exc:  # PyAV raises several error types for broken files
        return False, [f"{ref.name}: unreadable ({exc}): no audio"]
    if channels <= 0 or rate <= 0:
        return False, [f"{ref.name}: header gives {channels} channel(s) at {rate} Hz: no audio"]
    if seconds <= 0:
        return False, [f"{ref.name}: no audio samples: no audio"]
    if abs(seconds - duration) > DURATION_TOLERANCE_S:
        return True, [f"{ref.name}: audio lasts {seconds:.2f} s but the motion {duration:.2f} s"]
    return True, []
