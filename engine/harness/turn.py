"""A real TURN server for tests: Debian's coturn (`turnserver`), started and stopped by the test.

    with TurnServer() as turn:                     # on 127.0.0.1, a free port, long-term credentials
        ServeProcess("--turn", turn.url, "--ice-relay")

It listens on one loopback address and relays only between its own min/max ports there, allowing
loopback peers (coturn refuses them by default, rightly so on a real network). Its log is kept for
the test to read.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD, REALM = "dyadic", "turn-test-secret", "dyadic.test"


def unavailable() -> str | None:
    """Why a TURN server cannot be started here (None: it can)."""
    if shutil.which("turnserver") is None:
        return "coturn's `turnserver` is not installed (the bootstrap installs Debian's coturn)"
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TurnServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = _free_port(host)
        self._log = tempfile.NamedTemporaryFile(mode="w+", suffix=".log")
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """As `dyadic serve --turn` takes it (credentials included)."""
        return f"turn:{USER}:{PASSWORD}@{self.host}:{self.port}"

    def __enter__(self) -> TurnServer:
        relay_ports = ("--min-port", "49200", "--max-port", "49400")
        self.proc = subprocess.Popen(
            [
                *("turnserver", "-n", "--listening-ip", self.host, "--relay-ip", self.host),
                *("--listening-port", str(self.port), *relay_ports),
                *("--lt-cred-mech", "--user", f"{USER}:{PASSWORD}", "--realm", REALM, "--fingerprint"),
                *("--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--simple-log", "--verbose"),
                *("--log-file", "stdout", "--pidfile", f"{self._log.name}.pid", "--userdb", f"{self._log.name}.db"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 15.0) -> None:
        """Until its TCP listener (the same port as UDP) accepts: then both are up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited ({self.proc.returncode}): {self.log()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"turnserver did not listen within {timeout:.0f} s: {self.log()[-2000:]}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for extra in (".pid", ".db"):
            Path(f"{self._log.name}{extra}").unlink(missing_ok=True)
        self._log.close()
