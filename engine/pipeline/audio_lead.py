"""Sending every source's audio ahead of its video, so that the browser can show each video frame
as soon as it has decoded it (its lip sync then holds the audio back to meet the video).

A recording's audio is known ahead of time: its frames are read AUDIO_LEAD_FRAMES early and their
audio pushed to the audio track then, stamped with its own content time; it reaches the browser
before the video of the same instant. The model still hears each frame's audio only when the
frame falls due, and a pause or a seek takes effect AUDIO_LEAD_FRAMES later. A live source's audio
cannot be read early, but the browser gets silence for it (the user hears themselves already),
and silence can be sent for a time not yet captured: it is stamped AUDIO_LEAD_FRAMES ahead.
"""

from __future__ import annotations

import collections

import numpy as np

from ..contracts import Source, SpeakerFrame
from ..webrtc.tracks import SessionAudioTrack
from .sources import PlaybackSource

AUDIO_LEAD_FRAMES = 3  # a 20 ms audio frame is complete >= 66 ms before its content time


class AudioLead:
    """Reads a session's source, pushing each frame's audio to the audio track ahead of time."""

    def __init__(self, audio: SessionAudioTrack):
        self._audio = audio
        self._ahead: collections.deque[SpeakerFrame] = collections.deque()  # read, audio pushed

    def reset(self) -> None:
        """A new source: forget the old one's frames read ahead (their audio has gone out)."""
        self._ahead.clear()

    def read(self, source: Source, due: float) -> SpeakerFrame:
        """The source's frame due at `due`; its audio (or its silence) is out already."""
        period = 1.0 / source.fps
        recording = isinstance(source, PlaybackSource)
        while len(self._ahead) <= (AUDIO_LEAD_FRAMES if recording else 0):
            frame = source.read(due + len(self._ahead) * period)
            if recording:
                self._audio.push(frame.audio, frame.captured)
            else:  # a microphone (the user hears themselves already) or nothing yet
                self._audio.push(np.zeros_like(frame.audio), frame.captured + AUDIO_LEAD_FRAMES * period)
            self._ahead.append(frame)
        return self._ahead.popleft()
