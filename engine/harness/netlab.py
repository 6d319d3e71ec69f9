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

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

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
    reason = unavailable()
    if reason is not None:
        return reason
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


# -- a client on the client host, and a plan of spoiled links -------------------------------------------
def start_probe(
    net: TwoHosts, ws_url: str, seconds: float, *extra: str, timeout: float = 90.0
) -> subprocess.Popen[str]:
    """`dyadic probe` (aiortc; with "--browser", headless Chromium) on the client host; returns once
    its first frame has arrived, so that what follows is timed from a running session."""
    cmd = [*net.on("client"), sys.executable, "-m", "dyadic.engine.cli", "probe", ws_url, "--seconds", str(seconds)]
    proc = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "first frame after" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"no first frame on the client host: {''.join(lines)[-3000:]}")


def probe_output(proc: subprocess.Popen[str], timeout: float = 120.0) -> Any:
    """What the probe printed (its JSON), once it has finished."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"dyadic probe failed ({proc.returncode}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def follow_plan(
    net: TwoHosts, plan: list[tuple[str, float]], loss_percent: int = 2, cap_kbit: int = 600
) -> list[tuple[str, float, float]]:
    """Spoil the link step by step: each (what, seconds) with what one of "loss", "cap", "outage",
    "clean". Returns (what, start, end) on this machine's monotonic clock; ends clean."""
    actions = {"loss": lambda: net.loss(loss_percent), "cap": lambda: net.cap(cap_kbit), "outage": net.outage}
    phases = []
    for name, duration in plan:
        start = time.monotonic()
        actions.get(name, net.clear)()
        phases.append((name, start, start + duration))
        time.sleep(max(0.0, start + duration - time.monotonic()))
    net.clear()
    return phases


def spoiled_link_report(samples: list[dict[str, Any]], phases: list[tuple[str, float, float]]) -> dict[str, Any]:
    """What a page (`dyadic probe --browser` samples) went through in each phase of follow_plan:
    per "loss": FPS, NACKs, audio concealed, A/V offset; per "outage": seconds from the link's
    return to the first second at >= 25 FPS; per "cap": the worst second after 4 s and the bitrate
    target at its end; per "clean" after a cap: how far the target climbed back."""
    import numpy as np

    t = np.array([s["t"] for s in samples])

    def series(key: str) -> Any:
        return np.array([np.nan if s.get(key) is None else s[key] for s in samples], float)

    def network(key: str) -> Any:
        return np.array([((s.get("server") or {}).get("network") or {}).get(key, np.nan) for s in samples], float)

    decoded, target = series("framesDecoded"), network("target_kbps")

    def growth_of(values: Any, start: float, end: float) -> float:
        """How much a counter grew between two times (samples the page could not fill are skipped)."""
        ok = np.isfinite(values)
        return float(np.diff(np.interp([start, end], t[ok], values[ok]))[0]) if ok.sum() >= 2 else float("nan")

    def fps(start: float, end: float) -> float:
        return growth_of(decoded, start, end) / (end - start)

    def growth(key: str, start: float, end: float) -> float:
        return growth_of(series(key), start, end)

    report: dict[str, Any] = {}
    for k, (name, start, end) in enumerate(phases):
        if name == "loss":
            av = series("avOffsetMs")[(t >= start + 1.0) & (t <= end)]
            received = growth("audioTotalSamplesReceived", start + 1.0, end)
            report["loss"] = {
                "fps": round(fps(start + 1.0, end), 2),
                "nacks": growth("nackCount", start, end),
                "audio_concealed_pct": round(100 * growth("audioConcealedSamples", start + 1.0, end) / received, 2),
                "av_offset_max_abs_ms": float(np.nanmax(np.abs(av))) if np.isfinite(av).any() else None,
            }
        elif name == "outage":
            back = next((x for x in np.arange(0.0, 5.0, 0.1) if fps(end + x, end + x + 1.0) >= 25.0), None)
            silences = network("silences")[t >= end]
            report["outage"] = {
                "seconds": round(end - start, 1),
                "recovered_after_s": back,
                "server_saw_silences": int(np.nanmax(silences)) if np.isfinite(silences).any() else None,
            }
        elif name == "cap":
            seconds = np.arange(start + 4.0, end - 1.0 + 1e-9, 0.5)
            at_end = target[(t >= end - 3.0) & (t <= end)]
            report["cap"] = {
                "worst_second_fps": round(min(fps(x, x + 1.0) for x in seconds), 2),
                "target_at_end_kbps": float(np.nanmin(at_end)) if np.isfinite(at_end).any() else None,
                "estimate_at_end_kbps": float(np.nanmin(network("estimate_kbps")[(t >= end - 3.0) & (t <= end)])),
            }
        elif name == "clean" and k > 0 and phases[k - 1][0] == "cap":
            late = target[t >= end - 3.0]
            report["after_cap"] = {
                "seconds": round(end - start, 1),
                "target_kbps": float(np.nanmax(late)) if np.isfinite(late).any() else None,
            }
    estimate = network("estimate_kbps")
    seen = np.isfinite(estimate) & np.isfinite(target)
    report["target_follows_estimate"] = bool(np.all(target[seen] <= np.maximum(estimate[seen] * 0.85, 150) + 1.0))
    return report


def timeline_table(samples: list[dict[str, Any]], phases: list[tuple[str, float, float]]) -> str:
    """One line per second of a page's timeline: the phase, decoded FPS, A/V offset, and the
    server's bitrate target and the browser's estimate (what bench/network.py prints)."""
    t0 = phases[0][1]
    lines = ["   s  phase   FPS   A/V ms  target  estimate (kbit/s)"]
    last = None
    for s in samples:
        if last is not None and s["t"] - last["t"] < 0.9:
            continue
        phase = next((name for name, a, b in phases if a <= s["t"] < b), "-")
        net = (s.get("server") or {}).get("network") or {}
        fps = None
        if last is not None and s.get("framesDecoded") is not None and last.get("framesDecoded") is not None:
            fps = (s["framesDecoded"] - last["framesDecoded"]) / (s["t"] - last["t"])
        av, target, estimate = s.get("avOffsetMs", ""), net.get("target_kbps", ""), net.get("estimate_kbps", "")
        fps_text = "" if fps is None else f"{fps:5.1f}"
        lines.append(f"{s['t'] - t0:5.1f}  {phase:<6} {fps_text:>5}  {av!s:>6}  {target!s:>6}  {estimate!s}")
        last = s
    return "\n".join(lines)
