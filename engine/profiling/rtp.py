"""Which server frame a client presented: the RTP clock's origin, found from the frames themselves.

The sender adds one random 32-bit origin to every pts (RFC 3550), and the client sees only RTP
timestamps. The origin is the (client - server) pts difference that pairs the most frames; pts are
content times (webrtc/tracks.py), regular at a steady frame rate, so several differences tie (one
per frame period), and of those the one whose frames arrive soonest after they were sent, never
before, wins (arrival is a few ms after sending, a frame period 33 ms).

client/latency.js (`rtpOrigin`) does the same in the page, step for step; a test runs both on the
same frames. `dyadic profile` and the page's live panel both join frames with it.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

RTP_WRAP = 2**32
WINDOW = 60  # client frames the origin is searched with


def rtp_origin(frames: list[tuple[float, int]], traces: list[dict[str, Any]], min_votes: int) -> int | None:
    """The origin from client frames (arrival on the server's clock in s, RTP timestamp) and server
    traces ({"pts", "times": {"sent": s}}), or None when fewer than `min_votes` frames pair up or
    no tied difference has every frame arriving after it was sent."""
    if not frames or not traces:
        return None
    votes = collections.Counter((rtp - t["pts"]) % RTP_WRAP for _, rtp in frames for t in traces)
    best = max(votes.values())
    if best < min_votes:
        return None
    sent = {t["pts"]: t["times"]["sent"] for t in traces if "sent" in t["times"]}
    chosen, soonest = None, float("inf")
    for origin, n in votes.items():  # in the order first seen: the first of equals wins
        if n != best:
            continue
        delays = [at - sent[pts] for at, rtp in frames if (pts := (rtp - origin) % RTP_WRAP) in sent]
        if not delays or min(delays) < 0:  # never before it was sent
            continue
        typical = float(np.median(delays))
        if typical < soonest:
            chosen, soonest = origin, typical
    return chosen


def join(server_frames: list[dict[str, Any]], client_frames: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Server traces + client frames ({"rtp", "times": {client mark: s}, extras}) -> complete
    frames (every server mark and the client's), and the number of client frames left unmatched."""
    sent = [f for f in server_frames if f.get("pts") is not None]
    arrivals = [(min(c["times"].values()), c["rtp"]) for c in client_frames[:WINDOW]]
    origin = rtp_origin(arrivals, sent, min_votes=min(3, len(client_frames)))
    by_pts = {f["pts"]: f for f in sent}
    out, unmatched = [], 0
    for c in client_frames:
        frame = None if origin is None else by_pts.get((c["rtp"] - origin) % RTP_WRAP)
        if frame is None or "sent" not in frame["times"]:
            unmatched += 1
            continue
        extras = {k: v for k, v in c.items() if k not in ("rtp", "times")}
        out.append({"index": frame["index"], "pts": frame["pts"], "times": {**frame["times"], **c["times"]}, **extras})
    return out, unmatched
