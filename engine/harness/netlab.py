"""Two test hosts on one machine, and a link between them that the test can spoil.

    with TwoHosts() as net:                       # two network namespaces joined by a veth pair
        server = ServeProcess(host=net.server_ip, wrap=net.on("server"))
        net.loss(2)                               # 2 % of packets dropped, each way (nftables)
        net.cap(600)                              # the server's sending capped at 600 kbit/s (tc tbf)
        net.outage()                              # every packet dropped until net.clear()

The namespaces are this test's own: each has its loopback and one end of the veth pair, on
test-host addresses (10.231.N.1 and .2); nothing in them reaches the machine's interfaces or the
outside. Loss and outages are nftables rules and the cap a token-bucket qdisc, on the server's end,
because that is what this kernel offers (it has no netem, so no delay or jitter: `delay_unavailable`
says why). Leaving the block kills what still runs in the namespaces and deletes them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

HOSTS = ("server", "client")
TABLE = "dyadic_impair"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=check)


def unavailable() -> str | None:
    """Why test hosts cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (the bootstrap installs iproute2 and nftables)"
    probe = f"dyadic-probe-{os.getpid()}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _run("ip", "netns", "delete", probe, check=False)
    return None


def delay_unavailable() -> str | None:
    """Why delay and jitter cannot be added (None: tc netem works)."""
    if unavailable():
        return unavailable()
    with TwoHosts() as net:
        tried = net.tc("qdisc", "add", "dev", net.veth("server"), "root", "netem", "delay", "10ms", check=False)
    return None if tried.returncode == 0 else f"this kernel has no tc netem ({tried.stderr.strip()})"


class TwoHosts:
    """A `server` and a `client` namespace, joined by a veth pair on 10.231.N.0/24."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}-{time.monotonic_ns() % 100000}"
        self.names = {host: f"dyadic-{host}-{tag}" for host in HOSTS}
        subnet = 10 + os.getpid() % 240  # one /24 per test process; the namespaces keep runs apart anyway
        self.ips = {"server": f"10.231.{subnet}.1", "client": f"10.231.{subnet}.2"}
        self._made: list[str] = []

    @property
    def server_ip(self) -> str:
        return self.ips["server"]

    def veth(self, host: str) -> str:
        return f"veth-{host[:3]}"  # names are per namespace: the same in every pair

    def on(self, host: str) -> list[str]:
        """The prefix that runs a command on `host`."""
        return ["ip", "netns", "exec", self.names[host]]

    def tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(*self.on("server"), "tc", *args, check=check)

    def __enter__(self) -> TwoHosts:
        try:
            for host in HOSTS:
                _run("ip", "netns", "add", self.names[host])
                self._made.append(host)
                _run(*self.on(host), "ip", "link", "set", "lo", "up")
            s, c = self.names["server"], self.names["client"]
            vs, vc = self.veth("server"), self.veth("client")
            _run("ip", "link", "add", vs, "netns", s, "type", "veth", "peer", "name", vc, "netns", c)
            for host in HOSTS:
                _run(*self.on(host), "ip", "addr", "add", f"{self.ips[host]}/24", "dev", self.veth(host))
                _run(*self.on(host), "ip", "link", "set", self.veth(host), "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    # -- impairments (on the server's end of the link) ----------------------------------------------
    def _nft_drop(self, rule: str) -> None:
        self._nft_clear()
        veth = self.veth("server")
        script = (
            f"table inet {TABLE} {{\n"
            f"  chain out {{ type filter hook output priority 0; oifname {veth} {rule} drop; }}\n"
            f"  chain in {{ type filter hook input priority 0; iifname {veth} {rule} drop; }}\n"
            "}\n"
        )
        subprocess.run([*self.on("server"), "nft", "-f", "-"], input=script, text=True, check=True, timeout=30)

    def _nft_clear(self) -> None:
        _run(*self.on("server"), "nft", "delete", "table", "inet", TABLE, check=False)

    def loss(self, percent: int) -> None:
        """Drop `percent` % of packets at random, in each direction."""
        self._nft_drop(f"numgen random mod 100 < {int(percent)}")

    def outage(self) -> None:
        """Drop every packet, in each direction, until clear()."""
        self._nft_drop("")

    def cap(self, kbit: int, queue_ms: int = 200) -> None:
        """Limit what the server sends to `kbit` kbit/s (a token bucket; packets that would wait
        more than `queue_ms` are dropped, as in a router's queue)."""
        veth = self.veth("server")
        burst = max(1600, kbit * 1000 // 8 // 50)  # 20 ms worth of bytes, at least one full packet
        self.tc(
            "qdisc", "replace", "dev", veth, "root", "tbf", "rate", f"{kbit}kbit", "burst", str(burst),
            "latency", f"{queue_ms}ms",
        )  # fmt: skip

    def clear(self) -> None:
        """Back to a clean link."""
        self._nft_clear()
        self.tc("qdisc", "del", "dev", self.veth("server"), "root", check=False)

    def __exit__(self, *exc: object) -> None:
        for host in self._made:
            name = self.names[host]
            pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "delete", name, check=False)
        self._made = []
