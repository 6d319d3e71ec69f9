"""Through NAT (issue 18, item 2): the TURN servers reach the page's peer connection too, media
flows through a real TURN server (coturn) with both peers relay-only, and no log shows the
credentials."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from dyadic.engine.harness import turn
from dyadic.engine.harness.probe import probe
from dyadic.engine.harness.serve_process import ServeProcess

pytestmark = pytest.mark.skipif(turn.unavailable() is not None, reason=str(turn.unavailable()))


RELAYED_AT_LEAST = 6 * 40_000  # bytes: seconds of video at well over 300 kbit/s


def _relayed_bytes(log: str) -> int:
    """Bytes coturn received from peers, summed over the sessions it has closed."""
    return sum(int(m) for m in re.findall(r"peer usage: .*? rb=(\d+)", log))


def test_media_flows_at_30_fps_relayed_through_coturn_and_no_log_shows_the_password():
    with turn.TurnServer() as relay:
        with ServeProcess("--turn", relay.url, "--ice-relay", "-v") as server:
            result = asyncio.run(probe(server.ws, seconds=6.0))  # as a page: the server's ICE servers
            log = server.stop()
        # coturn writes each session's bytes to and from its peers when the allocation goes, a few
        # seconds after the peers have closed
        deadline = time.monotonic() + 20.0
        while _relayed_bytes(relay.log()) <= RELAYED_AT_LEAST and time.monotonic() < deadline:
            time.sleep(0.2)
        relayed = relay.log()
    welcome = result.welcome
    assert welcome["ice_transport_policy"] == "relay"
    assert welcome["ice_servers"] == [
        {"urls": f"turn:{relay.host}:{relay.port}", "username": turn.USER, "credential": turn.PASSWORD}
    ]
    assert not result.errors and result.fps(skip_s=1.0) >= 29.0, result.fps()
    assert len(result.video_times) >= 29 * 6
    # both peers allocated a relay and the media went through it: coturn logs each allocation, and
    # each closed session's bytes to and from its peers ("peer usage: ... rb=BYTES")
    assert relayed.count("ALLOCATE processed, success") >= 2, relayed[-3000:]
    assert "CHANNEL_BIND processed, success" in relayed
    assert _relayed_bytes(relayed) > RELAYED_AT_LEAST, relayed[-3000:]
    assert turn.PASSWORD not in log and "connection connected" in log  # -v: sessions logged, never the secret
