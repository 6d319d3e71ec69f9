"""The pose stage: in browser mode (`render: "client"`) the page draws the avatars itself, so a
frame's poses go out on the session's data channel instead of being skinned, rendered and encoded.

It takes the render stage's place in the frame thread (same submit(job, trace)), needs no worker
process and no thread of its own: packing is ~20 us, and the send is handed to the event loop
(aiortc's data channel is not thread-safe). A pose the channel cannot take at once (its buffer holds
more than MAX_BUFFERED_BYTES: the link is slower than the poses) is dropped and counted, never
queued behind older ones: the page interpolates over the gap.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

from ..contracts import AUDIO_RATE, FrameTrace, RenderJob
from ..webrtc import pose_packet
from ..webrtc.tracks import SessionAudioTrack
from .stats import SessionStats

MAX_BUFFERED_BYTES = 8 * pose_packet.PACKET_BYTES  # ~0.25 s of poses


class PoseChannel(Protocol):
    """What the stage needs of aiortc's RTCDataChannel."""

    @property
    def readyState(self) -> str: ...

    @property
    def bufferedAmount(self) -> int: ...

    def send(self, data: bytes) -> None: ...


class PoseStage:
    def __init__(self, loop: asyncio.AbstractEventLoop, audio: SessionAudioTrack, stats: SessionStats):
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.channel: PoseChannel | None = None  # set by the connection when the page's channel opens
        self.sent = 0
        self.dropped = 0  # poses the channel could not take in time
        self._loop = loop
        self._audio = audio
        self._stats = stats

    def start(self) -> None:
        self.ready.set()

    def stop(self) -> None:
        self.channel = None

    def submit(self, job: RenderJob, trace: FrameTrace) -> None:
        epoch = self._audio.content_epoch
        channel = self.channel
        if epoch is None or channel is None:
            self._stats.skipped += 1  # no audio yet to time it by, or no channel yet
            return
        captured = trace.times["captured"]
        packet = pose_packet.PosePacket(
            index=trace.index,
            audio_sample=round((captured - epoch) * AUDIO_RATE),
            captured_s=captured,
            speaker=job.speaker,
            listener=job.listener,
            framing=job.framing,
            model_listener=job.model_listener,
        )
        self._loop.call_soon_threadsafe(self._send, channel, pose_packet.pack(packet), trace)

    def _send(self, channel: PoseChannel, data: bytes, trace: FrameTrace) -> None:
        """On the event loop."""
        if channel.readyState != "open" or channel.bufferedAmount > MAX_BUFFERED_BYTES:
            self.dropped += 1
            self._stats.skipped += 1
            return
        channel.send(data)
        trace.mark("sent")
        self.sent += 1
        self._stats.rendered += 1  # a frame made for the page: drawn there
        self._stats.record_sent(trace)

    def describe(self) -> dict[str, Any]:
        return {"poses_sent": self.sent, "poses_dropped": self.dropped}
