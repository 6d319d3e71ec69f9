"""A headless aiortc client of `dyadic serve`: connects like the page does and measures what it
receives (tests, bench/serve.py, profiling).

    with ServeProcess("--max-sessions", "2") as server:      # harness/serve_process.py
        stats = asyncio.run(probe(server.ws, seconds=10, clip=None))

Frames are decoded (aiortc decodes H.264 or VP8 as a browser would), counted and timed on arrival.

`probe_at_low_priority` runs several probes in a process of their own at a lower CPU priority:
stand-ins for browsers on other machines, which on a small test machine should take only the CPU
the server leaves. `dyadic probe URL [--sessions N] [--seconds S] [--nice K]` does the same from a
shell and prints the results as JSON.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import av
import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

from ..contracts import AUDIO_RATE

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

TRACE_SETTLE_S = 1.8  # the server sends traces once a second, of frames sent >= 0.5 s before


@dataclass
class ProbeResult:
    welcome: dict[str, Any]
    video_times: list[float] = field(default_factory=list)  # monotonic arrival of each decoded frame
    video_pts: list[int] = field(default_factory=list)
    audio_samples: int = 0
    audio_times: list[float] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    frame_shape: tuple[int, int] | None = None
    connected_after_s: float | None = None
    first_frame_after_s: float | None = None
    traces: list[dict[str, Any]] = field(default_factory=list)  # the server's frame traces, when asked for
    answer: dict[str, Any] = field(default_factory=dict)  # the answer's render, render_note, video_codec
    pose_times: list[float] = field(default_factory=list)  # browser mode: monotonic arrival of each pose
    pose_indices: list[int] = field(default_factory=list)
    pose_audio_samples: list[int] = field(default_factory=list)  # each pose's audio sample (content time)
    bad_poses: list[str] = field(default_factory=list)  # packets that did not unpack, and why

    def fps(self, skip_s: float = 1.0) -> float:
        """Decoded frames per second after the first `skip_s` seconds (start-up excluded)."""
        return _rate(self.video_times, skip_s)

    def poses_per_second(self, skip_s: float = 1.0) -> float:
        """Browser mode: poses received per second after the first `skip_s` seconds."""
        return _rate(self.pose_times, skip_s)

    def audio_seconds(self) -> float:
        return self.audio_samples / AUDIO_RATE


def _rate(times: list[float], skip_s: float) -> float:
    t = np.array(times)
    if len(t) < 3:
        return 0.0
    t = t[t >= t[0] + skip_s]
    return float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 2 else 0.0


async def _reader(ws: ClientConnection, result: ProbeResult, answers: asyncio.Queue[str | None]) -> None:
    async for message in ws:
        if isinstance(message, bytes):
            continue
        msg = json.loads(message)
        kind = msg.get("type")
        if kind == "answer":
            result.answer = {k: msg.get(k) for k in ("render", "render_note", "video_codec")}
            await answers.put(msg["sdp"])
        elif kind == "telemetry":
            msg["received"] = time.monotonic()  # the server's clock too, on this machine
            result.telemetry.append(msg)
        elif kind == "state":
            result.states.append(msg)
        elif kind == "trace":
            result.traces.extend(msg["frames"])
        elif kind in ("error", "refused"):
            result.errors.append(msg)
            if kind == "refused":
                await answers.put(None)


async def _consume(
    track: MediaStreamTrack, result: ProbeResult, kind: str, stop: asyncio.Event, first: asyncio.Event
) -> None:
    from aiortc.mediastreams import MediaStreamError

    while not stop.is_set():
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        now = time.monotonic()
        if kind == "video":
            video = cast(av.VideoFrame, frame)  # a decoded frame, never a Packet, on a received track
            assert video.pts is not None
            first.set()
            result.video_times.append(now)
            result.video_pts.append(video.pts)
            result.frame_shape = (video.height, video.width)
        else:
            result.audio_samples += cast(av.AudioFrame, frame).samples
            result.audio_times.append(now)


def _receive_poses(channel: Any, result: ProbeResult, first: asyncio.Event) -> None:
    from ..webrtc import pose_packet

    @channel.on("message")
    def on_message(message: bytes | str) -> None:
        now = time.monotonic()
        try:
            packet = pose_packet.unpack(message if isinstance(message, bytes) else message.encode())
        except pose_packet.PosePacketError as exc:
            result.bad_poses.append(str(exc))
            return
        first.set()
        result.pose_times.append(now)
        result.pose_indices.append(packet.index)
        result.pose_audio_samples.append(packet.audio_sample)


def unverified_tls() -> ssl.SSLContext:
    """TLS that takes any certificate: for a test server's self-signed one, never for a real peer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ToneTrack(AudioStreamTrack):
    """A microphone stand-in: a 220 Hz tone in syllable-like bursts, 20 ms frames at 48 kHz."""

    async def recv(self) -> av.AudioFrame:
        frame = cast(av.AudioFrame, await super().recv())  # silence, paced in real time by aiortc
        assert frame.pts is not None
        t = (frame.pts + np.arange(frame.samples)) / frame.sample_rate
        wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
        out = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16)[None], format="s16", layout="mono")
        out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
        return out


async def probe(
    url: str,
    seconds: float = 10.0,
    clip: str | None = None,
    connect_timeout: float = 20.0,
    loopback: bool = True,
    microphone: bool = False,
    trace: bool = False,
    on_first_frame: Callable[[], None] | None = None,
    insecure: bool = False,
    render: str = "server",
) -> ProbeResult:
    """Connect to `url` (the /ws address), pick `clip` (default: the first), receive for `seconds`
    counted from the first video frame (the session's start-up is reported in first_frame_after_s).
    `microphone`: send a tone as the browser microphone and pick that source instead of a clip.
    `loopback`: gather only 127.0.0.1 candidates (this process-wide; what tests need).
    `trace`: ask for the server's per-frame traces (result.traces).
    `on_first_frame`: called when the first video frame has arrived.
    `insecure`: on wss://, accept any certificate (a test server's self-signed one).
    `render`: "client" asks for browser mode: poses on a data channel (pose_times etc.) and the
    audio, no video; the first pose counts as the first frame."""
    import websockets
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from ..webrtc import ice

    if loopback:
        from ..webrtc.aiortc_patches import restrict_to_loopback

        restrict_to_loopback()

    tls = unverified_tls() if insecure and url.startswith("wss:") else None
    async with websockets.connect(url, max_size=None, ssl=tls) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), connect_timeout))
        result = ProbeResult(welcome)
        if welcome.get("type") != "welcome":
            result.errors.append(welcome)
            return result
        answers: asyncio.Queue[str | None] = asyncio.Queue()
        reader = asyncio.create_task(_reader(ws, result, answers))
        # the ICE servers and policy the server gives its pages, as a page uses them
        relay_only = welcome.get("ice_transport_policy") == "relay"
        pc = RTCPeerConnection(ice.from_browser_servers(welcome.get("ice_servers") or [], relay_only))
        stop, first_frame = asyncio.Event(), asyncio.Event()
        consumers: list[asyncio.Task[None]] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            consumers.append(asyncio.create_task(_consume(track, result, track.kind, stop, first_frame)))

        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        try:
            # browser mode offers video too, as the page does: a server that draws itself answers with it
            pc.addTransceiver("video", direction="recvonly")
            if render == "client":
                _receive_poses(pc.createDataChannel("poses", ordered=False, maxRetransmits=0), result, first_frame)
            if microphone:
                pc.addTransceiver(ToneTrack(), direction="sendrecv")
            else:
                pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            t_offer = time.monotonic()
            if trace:
                await ws.send(json.dumps({"type": "trace", "on": True}))
            await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp, "render": render}))
            first = welcome["clips"][0]["id"] if welcome.get("clips") else None
            if microphone:
                await ws.send(json.dumps({"type": "source", "kind": "browser-mic"}))
            elif clip or first:
                await ws.send(json.dumps({"type": "source", "kind": "clip", "clip": clip or first}))
            sdp = await asyncio.wait_for(answers.get(), connect_timeout)
            if sdp is None:
                return result
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            await asyncio.wait_for(connected.wait(), connect_timeout)
            result.connected_after_s = time.monotonic() - t_offer
            try:
                await asyncio.wait_for(first_frame.wait(), connect_timeout)
            except asyncio.TimeoutError:
                server = result.telemetry[-1] if result.telemetry else "no telemetry"
                raise TimeoutError(
                    f"connected, but no video frame or pose in {connect_timeout:.0f} s; the server said: {server}"
                ) from None
            result.first_frame_after_s = time.monotonic() - t_offer
            if on_first_frame is not None:
                on_first_frame()
            await asyncio.sleep(seconds)
            if trace:  # the last frames' traces come with the next telemetry tick
                stop.set()
                await asyncio.sleep(TRACE_SETTLE_S)
        finally:
            stop.set()
            for task in consumers + [reader]:
                task.cancel()
            await pc.close()
        return result


def probe_at_low_priority(
    url: str,
    sessions: int = 1,
    seconds: float = 10.0,
    nice: int = 10,
    timeout: float = 120.0,
    render: str = "server",
) -> list[ProbeResult]:
    """`sessions` probes of `url` at once, in a child process at niceness +`nice`, each receiving
    for `seconds`. When the cores are busy, the server's threads then run first and the clients
    catch up in what is left, as if they ran elsewhere; a client that falls behind still times
    each frame when it gets to it, so the server's rate is what it measures."""
    cmd = [
        sys.executable,
        "-m",
        "dyadic.engine.cli",
        "probe",
        url,
        "--sessions",
        str(sessions),
        "--seconds",
        str(seconds),
        "--nice",
        str(nice),
        "--render",
        render,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"probe clients failed ({out.returncode}): {out.stderr[-2000:]}")
    return [ProbeResult(**r) for r in json.loads(out.stdout.strip().splitlines()[-1])]
