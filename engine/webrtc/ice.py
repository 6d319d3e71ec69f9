"""ICE configuration: no STUN unless asked, and a loopback-only mode for local demos and tests.

aioice leaves 127.0.0.1 out of its host candidates (RFC 8445 says loopback must not be gathered)
and aiortc asks Google's STUN server when `iceServers` is None. aiortc has no
option for either: the loopback mode (aiortc_patches.restrict_to_loopback) replaces aioice's
host-address function, and the answer keeps only loopback candidates of the offer (loopback_sdp).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCConfiguration


def rtc_configuration(
    stun: list[str] | None = None, turn: list[str] | None = None, relay_only: bool = False
) -> RTCConfiguration:
    """RTCConfiguration with exactly the servers given (none by default: no Google STUN).

    TURN URLs may carry credentials as turn:user:password@host:port. `relay_only`: candidates
    through the TURN servers only (to check that a TURN setup works)."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

    servers = [RTCIceServer(urls=url) for url in stun or []]
    for url in turn or []:
        scheme, _, rest = url.partition(":")
        username = password = None
        if "@" in rest:
            creds, _, host = rest.rpartition("@")
            username, _, password = creds.partition(":")
            url = f"{scheme}:{host}"
        servers.append(RTCIceServer(urls=url, username=username, credential=password))
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def from_browser_servers(servers: list[dict[str, Any]], relay_only: bool = False) -> RTCConfiguration:
    """What a page does with the welcome's `ice_servers`, for an aiortc client (dyadic probe)."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    ice_servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential")) for s in servers
    ]
    return RTCConfiguration(iceServers=ice_servers, iceTransportPolicy=policy)


def browser_ice_servers(
    stun: list[str] | None = None, turn: list[str] | None = None
) -> list[dict[str, str | list[str]]]:
    """The same servers for the page's RTCPeerConnection."""
    config = rtc_configuration(stun, turn)
    assert config.iceServers is not None  # a list, never aiortc's default
    return [
        {k: v for k, v in (("urls", s.urls), ("username", s.username), ("credential", s.credential)) if v is not None}
        for s in config.iceServers
    ]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # an mDNS name (<uuid>.local) or garbage
        return False


def loopback_sdp(sdp: str) -> str:
    """The offer with every ICE candidate that is not on loopback removed (the peer may still be
    reached peer-reflexively on 127.0.0.1, which is how Chromium connects there)."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 5 or not _is_loopback(fields[4]):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
