"""`dyadic serve`: the browser page, websocket signalling/control/telemetry, and the sessions.

One port serves both: plain HTTP GETs return the page's files (client/), `/ws` upgrades to the
websocket of one session (protocol.py). Media goes over WebRTC (aiortc), offer/answer over
the websocket, without trickle ICE. Sessions share one model runtime per dataset (batched).
A bad message gets an error reply on its own socket; a failing session is closed alone.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import http
import itertools
import json
import logging
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import av
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.http11 import Request, Response

from ..contracts import AUDIO_RATE, Source
from ..pipeline.batching import SharedStepper
from ..pipeline.pose_stage import PoseStage
from ..pipeline.session import Session
from ..pipeline.sources import (
    MicrophoneSource,
    MicrophoneUnavailable,
    PlaybackSource,
    local_microphone,
    local_microphone_problem,
)
from ..webrtc import aiortc_patches, codec, ice
from . import protocol, tls
from .access import AccessPolicy
from .assets import PageAssets, three_problem
from .clips import PAGE, ClipList, ClipQuery
from .heap import fix_mmap_threshold, trim_heap_forever
from .protocol import ProtocolError
from .tls import Certificate

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender
    from aiortc.mediastreams import MediaStreamTrack
    from websockets.asyncio.server import Server as WebSocketServer

    from dyadic.datasets.catalog import Catalog
    from dyadic.datasets.interaction import Interaction

log = logging.getLogger("dyadic.engine")

WS_FRAME_LIMIT = 4 * 1024 * 1024  # above protocol.MAX_MESSAGE_BYTES, so that we can answer, not drop
TELEMETRY_PERIOD_S = 1.0
LIVE_FPS = 30.0
SWITCH_INTERVAL_S = 0.001
# A reloaded page connects again before its old session has freed its render worker (~1 s): a
# new connection waits this long for sessions that are already closing before it is refused.
CLOSING_WAIT_S = 5.0
# a client that keeps sending bad requests gets an error reply to each, but only this many log lines
WARNINGS_PER_WINDOW, WARNING_WINDOW_S = 5, 10.0
# A socket holds a session slot; it gets no render worker until it offers, and is closed when it
# has not offered within --offer-timeout (default below) or has sent this many unusable offers.
OFFER_TIMEOUT_S = 15.0
POSE_CHANNEL = "poses"  # the data channel a browser-mode page opens (protocol.py)
RENDER_OPTIONS = ("any", "server-only")  # --render: may pages draw the avatars themselves?
GZIP_ABOVE = 256 * 1024  # bytes: larger responses go gzipped to browsers that take it
MAX_REFUSED_OFFERS = 3


@dataclass
class ServeOptions:
    data: Path
    models: dict[str, Path]  # dataset -> .onnx / .pt
    host: str = "127.0.0.1"
    port: int = 8080
    size: tuple[int, int] = (640, 480)
    max_sessions: int = 4
    ice_loopback: bool = False
    stun: list[str] = field(default_factory=list)
    turn: list[str] = field(default_factory=list)
    ice_relay: bool = False  # TURN relays only, here and in the pages (checks a TURN setup)
    body_model: str | None = None
    gl_backend: str = "auto"
    decimate: float | str = "auto"  # body triangles left out in software rendering: renderer/lod.py
    device: str = "auto"
    video_codec: str = "h264"  # preferred; webrtc/codec.py CODECS
    public_hosts: list[str] = field(default_factory=list)  # names besides the bind address and localhost
    allow_origins: list[str] = field(default_factory=list)  # other sites whose pages may connect
    offer_timeout_s: float = OFFER_TIMEOUT_S  # a socket that has not offered by then is closed
    certificate: Certificate | None = None  # https (tls.py); None: plain http
    render: str = "any"  # RENDER_OPTIONS: "server-only" sends video to pages that ask to draw
    catalog: Catalog | None = None  # `data` already scanned (None: the engine scans it)


class Engine:
    """Everything sessions share: the data catalog, the model runtimes, the options."""

    def __init__(self, options: ServeOptions):
        from dyadic.datasets import scan
        from dyadic.models.runtime import load_runtime
        from dyadic.renderer import gl

        self.options = options
        # Resolved once here (the EGL probe is a subprocess); every render worker gets the result.
        self.gl_backend = gl.select_backend(options.gl_backend)
        self.catalog = options.catalog or scan(options.data)
        self.steppers = {
            dataset: SharedStepper(load_runtime(path, options.device)) for dataset, path in options.models.items()
        }
        for dataset, stepper in self.steppers.items():
            if stepper.layout.spec_name != dataset:
                raise ValueError(
                    f"model {options.models[dataset]} was trained on {stepper.layout.spec_name} data, not {dataset}"
                )
        self.default_dataset = "seamless" if "seamless" in self.steppers else next(iter(self.steppers), None)
        self.microphone_problem = local_microphone_problem()  # asked once: a page offers it only if None
        self.clips = ClipList(self.catalog.interactions, set(self.steppers))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one Engine per server, alive as long as it
    def load_clip(self, clip_id: str) -> Interaction:
        """Interaction by id; only ids from the catalog are ever looked up (no paths from clients)."""
        entry = self.catalog.find(clip_id)
        if entry is None:
            raise ProtocolError(f"source: no clip {protocol.quoted(clip_id)} in the data (see the clip list)")
        return entry.load()

    def model_info(self) -> dict[str, dict[str, Any]]:
        return {d: {"provider": s.provider, "channels": s.layout.size} for d, s in self.steppers.items()}

    def model_batching(self) -> dict[str, dict[str, int]]:
        """For /status only (a page is not told how busy the server is): each model's steps so far
        and the ONNX Runtime calls they took (pipeline/batching.py)."""
        return {d: {"steps": s.calls, "calls": s.batches} for d, s in self.steppers.items()}


class Server:
    def __init__(self, options: ServeOptions):
        self.options = options
        self.engine = Engine(options)
        self.sessions: dict[str, Connection] = {}
        self._ids = itertools.count(1)
        self._freed = asyncio.Condition()  # notified when a session has gone
        self._server: WebSocketServer | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self._gzip_cache: dict[tuple[str, int, int], bytes] = {}
        self.assets = PageAssets(options.body_model)
        self.started = time.monotonic()

    @property
    def url(self) -> str:
        scheme = "https" if self.options.certificate is not None else "http"
        host = self.options.host
        return f"{scheme}://[{host}]:{self.port}/" if ":" in host else f"{scheme}://{host}:{self.port}/"

    @property
    def port(self) -> int:
        if self._server is None:
            return self.options.port
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        # Each session's threads make hundreds of short GIL-releasing calls per frame (GL, numpy,
        # ONNX Runtime); with the default 5 ms switch interval every re-acquisition can wait a
        # full interval behind another thread's Python code. 1 ms keeps hand-overs short.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if self.options.ice_loopback:
            aiortc_patches.restrict_to_loopback()
        aiortc_patches.install()
        fix_mmap_threshold()  # heap.py: pictures mapped on their own, not kept in the heaps
        self._trimmer = asyncio.create_task(trim_heap_forever())  # heap.py: slow spells' high-water marks
        self._server = await serve(
            self._handle,
            self.options.host,
            self.options.port,
            process_request=self._http,
            ssl=tls.server_context(self.options.certificate) if self.options.certificate else None,
            max_size=WS_FRAME_LIMIT,
            ping_interval=2.0,
            ping_timeout=4.0,
        )

    async def stop(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
        for conn in list(self.sessions.values()):
            await conn.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def status(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "max_sessions": self.options.max_sessions,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "clips": len(self.engine.clips),
            "models": self.engine.model_info(),
            "model_batching": self.engine.model_batching(),
            "gl_backend": self.engine.gl_backend,
            "video_codec": self.options.video_codec,
        }

    def render_mode(self, wanted: str) -> tuple[str, str | None]:
        """Who draws for a page that asks for `wanted`: ("server" | "client", why not as asked)."""
        if wanted != "client":
            return "server", None
        if self.options.render == "server-only":
            return "server", "this server draws on the server only (--render server-only)"
        if (problem := three_problem()) is not None:
            return "server", problem
        return "client", None

    # -- HTTP ----------------------------------------------------------------------------------
    @functools.cached_property
    def access(self) -> AccessPolicy:
        """Built once the port is known (port 0 picks one)."""
        opts = self.options
        return AccessPolicy(opts.host, self.port, opts.public_hosts, opts.allow_origins)

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        refusal = self.access.refusal(request.headers.get("Host"), request.headers.get("Origin"))
        if refusal is not None:
            log.warning("refused %s from %s: %s", request.path[:80], _peer(connection), refusal)
            return connection.respond(http.HTTPStatus.FORBIDDEN, "forbidden\n")
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None  # the websocket handshake goes on
        if path == "/status":  # for scripts and health checks
            body = json.dumps(self.status()).encode()
            return Response(
                200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body
            )
        if (
            path == "/avatar.glb"
            and self.options.body_model
            and not self.access.from_own_page(request.headers.get("Sec-Fetch-Site"), request.headers.get("Referer"))
        ):
            # a user's SMPL-H/SMPL-X model goes only to this server's own pages (assets.py)
            log.warning(
                "refused /avatar.glb to %s: a body model is served to this server's pages only", _peer(connection)
            )
            return connection.respond(
                http.HTTPStatus.FORBIDDEN, "the body model is served to this server's pages only\n"
            )
        found = await self.assets.get(path)
        if found is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        body, ctype = found
        fields = [("Content-Type", ctype), ("Cache-Control", "no-store")]
        if len(body) > GZIP_ABOVE and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = await self._gzipped(path, body)  # the avatar: 0.95 MB -> 0.25 MB; three.js: 1.3 -> 0.3
            fields.append(("Content-Encoding", "gzip"))
        return Response(200, "OK", Headers([*fields, ("Content-Length", str(len(body)))]), body)

    async def _gzipped(self, path: str, body: bytes) -> bytes:
        """`body` gzipped, once per content (a page load asks for three.js and the avatar each time)."""
        key = (path, zlib.crc32(body), len(body))
        if key not in self._gzip_cache:
            self._gzip_cache[key] = await asyncio.to_thread(gzip.compress, body, 6)
        return self._gzip_cache[key]

    # -- websocket ------------------------------------------------------------------------------
    async def _has_room(self) -> bool:
        """Whether one more session fits, at once or once sessions that are already closing have
        gone (within CLOSING_WAIT_S)."""
        limit, loop = self.options.max_sessions, asyncio.get_running_loop()
        deadline = loop.time() + CLOSING_WAIT_S
        async with self._freed:
            while len(self.sessions) >= limit:
                staying = sum(not conn.closing for conn in self.sessions.values())
                if staying >= limit or loop.time() >= deadline:
                    return False
                try:
                    await asyncio.wait_for(self._freed.wait(), deadline - loop.time())
                except asyncio.TimeoutError:
                    return False
        return True

    async def _handle(self, ws: ServerConnection) -> None:
        if not await self._has_room():
            log.warning("refused a session: %d of %d in use", len(self.sessions), self.options.max_sessions)
            limit = self.options.max_sessions
            used = f"{len(self.sessions)} of {limit} session{'s' * (limit != 1)} in use"
            full = f"The server is full ({used}); try again later"
            await ws.send(protocol.encode("refused", message=full))
            await ws.close(1013, "server full")
            return
        sid = str(next(self._ids))
        conn = Connection(self, ws, sid)
        self.sessions[sid] = conn
        log.info("session %s opened (%d live)", sid, len(self.sessions))
        try:
            await conn.run()
        finally:
            await conn.close()
            self.sessions.pop(sid, None)
            log.info("session %s closed (%d live)", sid, len(self.sessions))
            async with self._freed:
                self._freed.notify_all()


class Connection:
    """One browser tab: its websocket, its peer connection and its Session."""

    def __init__(self, server: Server, ws: ServerConnection, sid: str):
        self.server, self.ws, self.id = server, ws, sid
        self.engine = server.engine
        self.loop = asyncio.get_running_loop()
        opts = server.options
        self.session = Session(
            sid,
            self.loop,
            models=self.engine.steppers,
            default_dataset=self.engine.default_dataset,
            size=opts.size,
            body_model=opts.body_model,
            gl_backend=self.engine.gl_backend,
            decimate=opts.decimate,
            on_failure=self._failed_threadsafe,
        )
        self.pc: RTCPeerConnection | None = None
        self._video_sender: RTCRtpSender | None = None
        self._audio_sender: RTCRtpSender | None = None
        self.browser_mic: MicrophoneSource | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._warned_since, self._warned, self._unlogged = 0.0, 0, 0  # the warning rate limit
        self._refused_offers = 0
        self._closed = False

    # -- messaging --------------------------------------------------------------------------------
    async def send(self, kind: str, **fields: Any) -> None:
        try:
            await self.ws.send(protocol.encode(kind, **fields))
        except ConnectionClosed:
            pass

    def _failed_threadsafe(self, text: str) -> None:
        async def fail() -> None:
            await self.send("error", message=text, request=None)
            await self.ws.close(1011, "session failed")

        asyncio.run_coroutine_threadsafe(fail(), self.loop)

    async def error(self, text: str, request: str | None) -> None:
        """An `error` reply to this client, and a log line unless this client has had
        WARNINGS_PER_WINDOW of them within WARNING_WINDOW_S (then one line says how many were not)."""
        now = time.monotonic()
        if now - self._warned_since >= WARNING_WINDOW_S:
            if self._unlogged:
                log.warning("session %s: %d more bad requests not logged", self.id, self._unlogged)
            self._warned_since, self._warned, self._unlogged = now, 0, 0
        if self._warned < WARNINGS_PER_WINDOW:
            self._warned += 1
            log.warning("session %s: %s", self.id, text)
        else:
            self._unlogged += 1
        await self.send("error", message=text, request=request)

    # -- main loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        opts = self.server.options
        await self.send(
            "welcome",
            session=self.id,
            clips=self.engine.clips.rows[:PAGE],
            clips_total=len(self.engine.clips),
            clip_facets=self.engine.clips.facets,
            size=list(opts.size),
            model=self.engine.model_info(),
            movement=(
                self.session.inbox[self.engine.default_dataset].describe() if self.engine.default_dataset else None
            ),
            ice_servers=ice.browser_ice_servers(opts.stun, opts.turn),
            ice_transport_policy="relay" if opts.ice_relay else "all",
            server_microphone={
                "available": self.engine.microphone_problem is None,
                "why_not": self.engine.microphone_problem,
            },
            limits={"max_message_bytes": protocol.MAX_MESSAGE_BYTES},
        )
        self._tasks.append(asyncio.create_task(self._telemetry()))
        self._tasks.append(asyncio.create_task(self._expect_offer(self.server.options.offer_timeout_s)))
        try:
            await self._serve_messages()
        except ConnectionClosedError as exc:  # a reset, a protocol error, a ping timeout: expected
            if exc.sent is None or exc.sent.code == 1000:  # not a close of ours, which said why already
                log.warning("session %s: the connection broke (%s)", self.id, exc)

    async def _serve_messages(self) -> None:
        async for message in self.ws:
            request = None
            try:
                if isinstance(message, bytes):
                    request = "movement"
                    self.session.movement_inbox().push_binary(message)
                    continue
                req = protocol.parse(message)
                request = req.type
                await self._dispatch(req)
            except (ProtocolError, ValueError, MicrophoneUnavailable) as exc:
                await self.error(str(exc), getattr(exc, "request", None) or request)
            except Exception as exc:  # a bug serving one request must not end the session
                log.exception("session %s: %s request failed", self.id, request)
                await self.error(f"{request or 'message'}: internal error ({type(exc).__name__}: {exc})", request)

    async def _dispatch(self, req: protocol.Request) -> None:
        body, kind = req.body, req.type
        session = self.session
        if kind == "offer":
            await self._offer(body["sdp"], body.get("render", "server"))
        elif kind == "source":
            await self._set_source(body)
        elif kind == "play":
            self._playback(kind).play()
        elif kind == "pause":
            self._playback(kind).pause()
        elif kind == "seek":
            self._playback(kind).seek(body["seconds"])
        elif kind == "loop":
            self._playback(kind).set_loop(body["on"])
        elif kind == "resample":
            session.resample()
        elif kind == "movement":
            session.movement_inbox().push_channels(body["channels"])
            return
        elif kind == "ping":
            await self.send("pong", t=body["t"], server=time.monotonic() * 1e3, server_wall=time.time() * 1e3)
            return
        elif kind == "trace":
            session.stats.trace(body["on"], body.get("frame_id", False))
            return
        elif kind == "clips":
            query = ClipQuery.from_body(body)
            total, page = self.engine.clips.search(query)
            await self.send("clips", total=total, offset=query.offset, clips=page, seq=body.get("seq"))
            return
        await self.send("state", **session.state())

    def _playback(self, kind: str) -> PlaybackSource:
        src = self.session.source
        if not isinstance(src, PlaybackSource):
            raise ProtocolError(f"{kind}: only a recorded clip can {kind}; the source is {src.kind}")
        return src

    async def _set_source(self, body: dict[str, Any]) -> None:
        kind = body["kind"]
        source: Source
        browser_mic: MicrophoneSource | None = None
        if kind == "clip":
            interaction = await asyncio.get_running_loop().run_in_executor(None, self.engine.load_clip, body["clip"])
            stepper = self.engine.steppers.get(interaction.dataset)
            source = PlaybackSource(interaction, stepper.layout if stepper else None)
        elif kind == "local-mic":
            source = local_microphone(LIVE_FPS)
        else:  # "browser-mic" (protocol.py checked the kind)
            source = browser_mic = MicrophoneSource("browser-mic", LIVE_FPS)
        self.browser_mic = browser_mic
        self.session.set_source(source)

    # -- WebRTC -----------------------------------------------------------------------------------
    async def _offer(self, sdp: str, wanted: str) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        if self.pc is not None:
            raise ProtocolError("offer: this session is already connected (open a new page to reconnect)")
        if self._refused_offers >= MAX_REFUSED_OFFERS:
            await self.error(f"offer: {MAX_REFUSED_OFFERS} offers could not be used; closing", "offer")
            await self.ws.close(1008, "too many unusable offers")
            return
        opts = self.server.options
        if opts.ice_loopback:
            sdp = ice.loopback_sdp(sdp)
        render, note = self.server.render_mode(wanted)
        pc = RTCPeerConnection(ice.rtc_configuration(opts.stun, opts.turn, relay_only=opts.ice_relay))
        try:
            video = None
            if render == "server":
                # Our video transceiver exists before the offer is read, so that the codec
                # preference decides the codec of the answer (aiortc picks it in setRemoteDescription).
                video = pc.addTransceiver(self.session.video, direction="sendonly")
                video.setCodecPreferences(codec.preferences(opts.video_codec))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            kinds = {t.kind for t in pc.getTransceivers() if t.mid is not None}
            if render == "server" and "video" not in kinds:
                raise ValueError("the offer has no video transceiver")
            if render == "client" and pc.sctp is None:
                raise ValueError("the offer has no data channel for the poses")
            if "audio" in kinds:
                self._audio_sender = pc.addTrack(self.session.audio)
            for t in pc.getTransceivers():
                if t.kind == "audio" and t.receiver.track is not None:
                    self._tasks.append(asyncio.create_task(self._pump_browser_audio(t.receiver.track)))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            self._refused_offers += 1
            reason = str(exc)[: protocol.ECHO_LIMIT * 2]
            raise ProtocolError(f"offer: cannot use this SDP ({type(exc).__name__}: {reason})") from None
        self.pc = pc
        if render == "client":
            self._accept_pose_channel(pc, self.session.draw_in_browser(self.loop))
        else:
            assert video is not None
            self._video_sender = video.sender
        self.session.start()  # the avatar and the render worker (seconds) start once there is a peer

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("session %s: connection %s", self.id, pc.connectionState)
            if pc.connectionState == "connected":
                self.session.begin()
            elif pc.connectionState in ("failed", "closed"):
                await self.ws.close(1001, f"peer connection {pc.connectionState}")

        if render == "server":
            self.session.video_codec = codec.negotiated(pc.localDescription.sdp)
        await self.send(
            "answer",
            sdp=pc.localDescription.sdp,
            video_codec=self.session.video_codec,
            render=render,
            render_note=note,
            scene=await self.server.assets.scene(opts.size) if render == "client" else None,
        )

    def _accept_pose_channel(self, pc: RTCPeerConnection, stage: PoseStage) -> None:
        """The page's "poses" channel carries the stage's packets; the page sends nothing on it,
        so anything it does send is answered as a bad request, as on the websocket."""

        @pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            if channel.label != POSE_CHANNEL or stage.channel is not None:
                self.loop.create_task(self.error(f"data channel {protocol.quoted(channel.label)}: not expected", None))
                channel.close()
                return
            stage.channel = channel

            @channel.on("message")
            def on_message(message: bytes | str) -> None:
                self.loop.create_task(
                    self.error(f"{POSE_CHANNEL}: the page sends nothing on this channel ({len(message)} bytes)", None)
                )

    async def _pump_browser_audio(self, track: MediaStreamTrack) -> None:
        """The browser's microphone -> 48 kHz mono -> the browser-mic source (when selected).
        Read all the time, so aiortc's unbounded receive queue never grows."""
        from aiortc.mediastreams import MediaStreamError

        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        try:
            while True:
                frame = cast(av.AudioFrame, await track.recv())  # an audio track's: always an AudioFrame
                mic = self.browser_mic
                if mic is None:
                    continue
                for out in resampler.resample(frame):
                    mic.push(out.to_ndarray().reshape(-1).astype(np.float32))
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def _expect_offer(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if self.pc is None:
            log.warning("session %s: no offer within %.0f s; closing", self.id, timeout_s)
            await self.send("error", message=f"no WebRTC offer within {timeout_s:.0f} s", request=None)
            await self.ws.close(1008, f"no offer within {timeout_s:.0f} s")

    async def _telemetry(self) -> None:
        while True:
            await asyncio.sleep(TELEMETRY_PERIOD_S)
            network = getattr(self._video_sender, "network", None)  # ContentClockSender's, once offered
            await self.send(
                "telemetry",
                **self.session.telemetry(),
                network=await network() if network else None,
                audio_rtp_origin=getattr(self._audio_sender, "rtp_origin", None),
            )
            frames = self.session.stats.take_traces()
            if frames:
                await self.send("trace", frames=frames)
            await self.send("state", **self.session.state())

    @property
    def closing(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.session.close)
        if self.pc is not None:
            await self.pc.close()
        if self.ws.state.name == "OPEN":
            await self.ws.close()


async def serve_forever(options: ServeOptions, ready: Callable[[Server], None] | None = None) -> None:
    server = Server(options)
    await server.start()
    if ready is not None:
        ready(server)
    try:
        await asyncio.Future()
    finally:
        await server.stop()


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
        return f"{host}:{port}"
    except (TypeError, ValueError, OSError):
        return "?"
