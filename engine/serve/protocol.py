"""The websocket protocol between the browser page (client/) and `dyadic serve`.

One websocket per browser tab, at `/ws` on the same host and port as the page. Text messages are
JSON objects with a "type"; binary messages are movement frames. Every request that cannot be
served gets an `error` reply on the same socket (and a log line); the session goes on.

Client -> server
    {"type": "offer", "sdp": "...", "render": "server" | "client"}
                                                      WebRTC offer (complete: ICE gathered, no trickle);
                                                      render (default "server"): "client" asks to draw
                                                      the avatars in the page from poses sent on the
                                                      offer's data channel "poses" (unordered, no
                                                      retransmits; webrtc/pose_packet.py has the layout)
                                                      in place of the video
    {"type": "source", "kind": "clip", "clip": ID}    play a recorded interaction (ID from `welcome.clips`)
    {"type": "source", "kind": "browser-mic"}         the audio track the page sends on its audio transceiver
    {"type": "source", "kind": "local-mic"}           a microphone on the server (sounddevice)
    {"type": "play"} | {"type": "pause"}              recorded source only
    {"type": "seek", "seconds": 12.5}                 recorded source only
    {"type": "loop", "on": true}                      recorded source only (default on)
    {"type": "resample"}                              draw a new reaction sample (new latent seed)
    {"type": "movement", "channels": {GROUP: nested list of the group's shape, ...}}
                                                      pushed speaker movement; groups left out are masked
    binary: little-endian float32 x C (+ G)           the same, flattened in `welcome.movement.groups`
                                                      order (C = sum of sizes); G optional per-group
                                                      validity (1 valid, 0 masked)
    {"type": "clips", "query": TEXT, "dataset": D, "vendor": V, "fps": F, "min_seconds": S, "max_seconds": S,
     "family": FEATURE_FAMILY, "problems": bool, "offset": N, "limit": N, "seq": N}
                                                      a page of the clip list (clips.py): every field
                                                      optional, null = any; answered by "clips"
    {"type": "ping", "t": CLIENT_MS}                  clock probe: answered by "pong"
    {"type": "trace", "on": bool, "frame_id": bool}   stream per-frame traces (dyadic profile);
                                                      frame_id (optional, default false): draw each
                                                      frame's index into its pixels (pipeline/frame_id.py)

Server -> client
    {"type": "welcome", "session": ID,
     "clips": [the first page of clips, as in "clips" below], "clips_total": N,
     "clip_facets": {"datasets": [...], "vendors": [...], "fps": [...], "features": [...]},
     "size": [W, H], "model": {...}, "movement": {"dataset", "groups": [{"name", "shape"}], "size"},
     "ice_servers": [RTCIceServer...] (the --stun/--turn given),
     "ice_transport_policy": "all" | "relay", "server_microphone": {"available": bool, "why_not": str | null},
     "limits": {"max_message_bytes": N}}
    {"type": "answer", "sdp": "...", "video_codec": "H264" | null, "render": "server" | "client",
     "render_note": str | null, "scene": {...} | null}
                                                      the codec the video is sent in (null in browser
                                                      mode); render: who draws, with the reason when
                                                      the page asked for "client" and gets "server";
                                                      scene (browser mode): the server renderer's
                                                      layout (renderer/scene.py) and face_names
    {"type": "state", "source": {...}, "playing": bool, "position": s, "duration": s, "loop": bool, "seed": n,
     "listener": "model" | "recorded", "model": {"provider", "dataset"} | null}
    {"type": "telemetry", "fps": x, "frames": n, "rendered": n, "sent": n, "dropped": n, "repeated": n,
     "stalls": n, "stages_ms": {stage: median},
     "latency_ms": {"median": x, "p95": x}, "audio_underruns": n, "movement": "pushed" | "recorded" | "none",
     "video_codec": "H264" | "VP8" | null, "render": "server" | "client",
     "audio_rtp_origin": n | null}                    the audio's RTP timestamp at sample 0, once sent:
                                                      the page maps a pose's audio sample to its playout
    {"type": "clips", "total": N, "offset": N, "seq": N | null, "clips": [{"id", "dataset", "vendor": V | null,
     "duration", "fps", "features": [FAMILY...], "problems": N, "playable", "listener": "model" | "recorded"}]}
    {"type": "pong", "t": CLIENT_MS, "server": SERVER_MONOTONIC_MS, "server_wall": SERVER_TIME_MS}
    {"type": "trace", "frames": [{"index": k, "pts": 90 kHz, "times": {stage: MONOTONIC_S}}]}
                                                      about once a second while tracing is on: the
                                                      server side of every frame sent (stages in
                                                      contracts.SERVER_MARKS order)
    {"type": "error", "message": "...", "request": TYPE or null}
    {"type": "refused", "message": "..."}             sent before closing when --max-sessions is reached
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ECHO_LIMIT = 60  # characters of a client's own text quoted back in an error
MAX_MESSAGE_BYTES = 256 * 1024
MAX_SDP_CHARS = 64 * 1024  # a browser's offer with its candidates is 3-10 KB
MAX_SDP_MEDIA = 8  # m-lines: the page offers 2 (video, audio)  # an SDP offer is ~5 KB; a movement frame a few KB
SOURCE_KINDS = ("clip", "browser-mic", "local-mic")
RENDER_MODES = ("server", "client")  # who draws the avatars: the server (video) or the page (poses)
KNOWN_TYPES = ("offer", "source", "play", "pause", "seek", "loop", "resample", "movement", "ping", "trace", "clips")
MAX_QUERY_CHARS = 200
MAX_CLIP_PAGE = 500


class ProtocolError(ValueError):
    """A client message that cannot be served: its text goes back to that client, with the
    message type it answers (None when the message had no readable type)."""

    def __init__(self, message: str, request: str | None = None):
        super().__init__(message)
        self.request = request


@dataclass(frozen=True)
class Request:
    type: str
    body: dict[str, Any]


def _flag(body: dict[str, Any], key: str, kind: str, optional: bool = False) -> None:
    if not isinstance(body.get(key, False if optional else None), bool):
        raise ProtocolError(f"{kind}: '{key}' must be true or false")


def _number(body: dict[str, Any], key: str, kind: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{kind}: '{key}' must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ProtocolError(f"{kind}: '{key}' must be finite")
    return float(value)


def _clip_query(body: dict[str, Any]) -> None:
    for key in ("query", "dataset", "vendor", "family"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_QUERY_CHARS):
            raise ProtocolError(f"clips: '{key}' must be a string of at most {MAX_QUERY_CHARS} characters, or null")
    for key in ("fps", "min_seconds", "max_seconds"):
        if body.get(key) is not None and _number(body, key, "clips") < 0:
            raise ProtocolError(f"clips: '{key}' must be >= 0")
    if body.get("problems") is not None:
        _flag(body, "problems", "clips")
    for key, low, high in (("offset", 0, 10**9), ("limit", 1, MAX_CLIP_PAGE), ("seq", 0, 2**53)):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise ProtocolError(f"clips: '{key}' must be a whole number from {low} to {high}")


def _validate(kind: str, body: dict[str, Any]) -> None:
    if kind == "offer":
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise ProtocolError("offer: 'sdp' must be an SDP text starting with 'v=0'")
        if len(sdp) > MAX_SDP_CHARS:
            raise ProtocolError(f"offer: an SDP of {len(sdp)} characters is over the limit of {MAX_SDP_CHARS}")
        media = sum(line.startswith("m=") for line in sdp.splitlines())
        if media > MAX_SDP_MEDIA:  # aiortc parses each on the event loop
            raise ProtocolError(f"offer: {media} media sections; a session uses at most {MAX_SDP_MEDIA}")
        if body.get("render", "server") not in RENDER_MODES:
            raise ProtocolError(f"offer: 'render' must be one of {', '.join(RENDER_MODES)}")
    elif kind == "source":
        if body.get("kind") not in SOURCE_KINDS:
            raise ProtocolError(f"source: 'kind' must be one of {', '.join(SOURCE_KINDS)}")
        if body["kind"] == "clip" and not isinstance(body.get("clip"), str):
            raise ProtocolError("source: 'clip' must be a clip id (a string)")
    elif kind == "seek":
        if _number(body, "seconds", kind) < 0:
            raise ProtocolError("seek: 'seconds' must be >= 0")
    elif kind == "loop":
        _flag(body, "on", kind)
    elif kind == "movement":
        if not isinstance(body.get("channels"), dict):
            raise ProtocolError("movement: 'channels' must be an object of channel groups")
    elif kind == "clips":
        _clip_query(body)
    elif kind == "ping":
        _number(body, "t", kind)
    elif kind == "trace":
        _flag(body, "on", kind)
        _flag(body, "frame_id", kind, optional=True)
    elif kind not in KNOWN_TYPES:
        raise ProtocolError(f"unknown message type {quoted(kind)}")


def quoted(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` quoted for a reply or a log line, cut to `limit` characters: a client's text is never
    echoed whole (a 250 KB "type" would otherwise go to the log and back)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def parse(text: str | bytes) -> Request:
    """A text message -> Request, or ProtocolError with a message fit for the client."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not valid JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses once per nesting level
        raise ProtocolError("not valid JSON: nested too deeply") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolError("a message must be a JSON object with a string 'type'")
    try:
        _validate(body["type"], body)
    except ProtocolError as exc:
        known = body["type"] in KNOWN_TYPES
        raise ProtocolError(str(exc), body["type"] if known else None) from None
    return Request(body["type"], body)


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))
