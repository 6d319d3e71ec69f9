"""ICE configuration: no STUN unless asked, and a loopback-only mode for local demos and tests.

aioice leaves 127.0.0.1 out of its host candidates (RFC 8445 says loopback must not be gathered)
and aiortc asks Google's STUN server when `iceServers` is None (DESIGN.md section 6). aiortc has no
option for either, so the loopback mode replaces aioice's host-address function, the workaround in
common use; aioice looks it up as a module global at gathering time.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger("dyadic.engine")

LOOPBACK = "127.0.0.1"
_original_get_host_addresses = None


def restrict_to_loopback() -> None:
    """From now on this process gathers only a 127.0.0.1 host candidate (idempotent)."""
    global _original_get_host_addresses
    import aioice.ice

    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses

        def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [LOOPBACK] if use_ipv4 else []

        aioice.ice.get_host_addresses = loopback_only
        log.info("ICE restricted to %s", LOOPBACK)


def unrestrict() -> None:
    """Undo restrict_to_loopback (tests)."""
    global _original_get_host_addresses
    import aioice.ice

    if _original_get_host_addresses is not None:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        _original_get_host_addresses = None


def rtc_configuration(stun: list[str] | None = None, turn: list[str] | None = None):
    """RTCConfiguration with exactly the servers given (none by default: no Google STUN).

    TURN URLs may carry credentials as turn:user:password@host:port."""
    from aiortc import RTCConfiguration, RTCIceServer

    servers = [RTCIceServer(urls=url) for url in stun or []]
    for url in turn or []:
        scheme, _, rest = url.partition(":")
        username = password = None
        if "@" in rest:
            creds, _, host = rest.rpartition("@")
            username, _, password = creds.partition(":")
            url = f"{scheme}:{host}"
        servers.append(RTCIceServer(urls=url, username=username, credential=password))
    return RTCConfiguration(iceServers=servers)


def browser_ice_servers(stun: list[str] | None = None, turn: list[str] | None = None) -> list[dict]:
    """The same servers for the page's RTCPeerConnection."""
    config = rtc_configuration(stun, turn)
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
