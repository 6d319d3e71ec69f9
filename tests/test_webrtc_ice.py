"""ICE configuration: no STUN unless given, loopback candidates only in loopback mode."""

from __future__ import annotations

from dyadic.engine.webrtc import ice


def test_loopback_sdp_keeps_only_loopback_candidates():
    sdp = "\r\n".join(
        [
            "v=0",
            "a=candidate:1 1 udp 2122260223 192.168.1.7 50000 typ host",
            "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host",
            "a=candidate:3 1 udp 2122260223 0b8e-uuid.local 50002 typ host",
            "a=candidate:4 1 udp 2122260223 ::1 50003 typ host",
            "a=end-of-candidates",
        ]
    )
    out = ice.loopback_sdp(sdp)
    assert "127.0.0.1" in out and "::1" in out and "192.168" not in out and ".local" not in out
    assert out.startswith("v=0") and "end-of-candidates" in out


def test_ice_configuration_has_no_stun_unless_given():
    assert ice.rtc_configuration().iceServers == []
    servers = ice.browser_ice_servers(["stun:127.0.0.1:3478"], ["turn:alice:secret@127.0.0.1:3478"])
    assert servers == [
        {"urls": "stun:127.0.0.1:3478"},
        {"urls": "turn:127.0.0.1:3478", "username": "alice", "credential": "secret"},
    ]
