"""Who may use the server: only its own pages, under the names it is known by.

A page on another site can open a websocket to any address the browser reaches, 127.0.0.1 included,
and browsers send its `Origin`; a DNS-rebinding page reaches the server under the attacker's host
name, which shows in `Host`. So every request (pages, `/status`, the websocket) must name a known
host, and a request that carries an `Origin` must come from one of the server's own origins or one
allowed with `--allow-origin`. A client with no `Origin` (not a browser: `dyadic probe`, scripts)
is accepted, as a browser always sends it on a websocket.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def host_name(host_header: str) -> str:
    """The name of a `Host` value, without its port: "[::1]:8080" -> "::1"."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _origin(scheme: str, name: str, port: int) -> str:
    return f"{scheme}://[{name}]:{port}" if ":" in name else f"{scheme}://{name}:{port}"


def normalise_origin(url: str) -> str:
    """ "HTTPS://Example.org:8443/" -> "https://example.org:8443"; the port as written."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--allow-origin {url!r}: an origin is http(s)://HOST[:PORT]")
    name = parts.hostname
    netloc = f"[{name}]" if ":" in name else name
    return f"{parts.scheme}://{netloc}" + (f":{parts.port}" if parts.port else "")


class AccessPolicy:
    """The hosts and origins one server answers."""

    def __init__(self, bind_host: str, port: int, public_hosts: Iterable[str] = (), allow_origins: Iterable[str] = ()):
        names = {*LOOPBACK_NAMES, *(h.strip().lower() for h in public_hosts)}
        if bind_host not in ANY_ADDRESS:
            names.add(bind_host.lower())
        self.hosts = frozenset(names)
        own = {_origin(scheme, name, port) for name in names for scheme in ("http", "https")}
        default = {80: "http", 443: "https"}.get(port)  # browsers leave the default port out
        if default:
            own |= {f"{default}://[{n}]" if ":" in n else f"{default}://{n}" for n in names}
        self.origins = frozenset(own | {normalise_origin(o) for o in allow_origins})

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """Why a request with these headers is refused, or None to serve it."""
        if host is None or host_name(host) not in self.hosts:
            return f"unknown Host {(host or '(none)')[:80]!r} (add --public-host NAME to serve under that name)"
        if origin is not None and origin.strip().lower().rstrip("/") not in self.origins:
            return f"foreign Origin {origin[:80]!r} (add --allow-origin URL to let that site in)"
        return None

    def from_own_page(self, fetch_site: str | None, referer: str | None) -> bool:
        """Whether a GET comes from one of the server's own pages: the browser says so
        (`Sec-Fetch-Site: same-origin`, sent on https and localhost), or, where it sends no fetch
        metadata (plain http on another address), the page that asked is one of ours (`Referer`).
        A link from elsewhere, another site's page, or a script that names no page are not."""
        if fetch_site is not None:
            return fetch_site == "same-origin"
        if not referer:
            return False
        try:
            return normalise_origin(referer) in self.origins
        except ValueError:  # not an http(s) URL
            return False
