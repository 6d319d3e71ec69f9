"""`dyadic serve` in a process of its own (its own GIL, as in production), for tests, benchmarks and
profiling: started on a free port with ICE on loopback, its URL read from what it prints, and the
CPU time of it and its render workers read from /proc.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any


def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants, read from /proc (a process gone meanwhile is left out)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.append(p)
    return out


def process_tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of `pid` and each live descendant, by pid, read from /proc.
    Each includes the time of its children that have exited (cutime, cstime)."""
    out: dict[int, float] = {}
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[p] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return out


def process_tree_rss(pid: int) -> dict[int, int]:
    """Resident memory in bytes (VmRSS) of `pid` and each live descendant, by pid."""
    out: dict[int, int] = {}
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                rss = next((line.split()[1] for line in f if line.startswith("VmRSS:")), None)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if rss is not None:  # a zombie has none
            out[p] = int(rss) * 1024
    return out


def process_role(pid: int, server_pid: int) -> str:
    """ "server", "render worker PID" or "resource tracker PID" (multiprocessing's helper)."""
    if pid == server_pid:
        return "server"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = ""
    return f"resource tracker {pid}" if "resource_tracker" in cmd else f"render worker {pid}"


class ServeProcess:
    """`dyadic serve --port 0 ARGS` in its own process (its own GIL, as in production), its URL
    read from what it prints. On 127.0.0.1 (the default) ICE stays on loopback (--ice-loopback);
    on another `host` (a test host, harness/netlab.py) it gathers that host's addresses. `wrap`
    is a command prefix that runs it elsewhere, e.g. in a test host's network namespace."""

    def __init__(self, *args: str, host: str = "127.0.0.1", wrap: list[str] | None = None):
        # stderr goes to a file, not a pipe: nobody reads it while the server runs, and a pipe
        # that fills up (64 KB of log lines in a long profile) would block the server
        self._stderr = tempfile.TemporaryFile(mode="w+")
        loopback = ["--ice-loopback"] if host == "127.0.0.1" else []
        self.proc = subprocess.Popen(
            [
                *(wrap or []),
                *(sys.executable, "-m", "dyadic.engine.cli", "serve", "--host", host, "--port", "0"),
                *loopback,
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None  # stdout=PIPE
        line = self.proc.stdout.readline()
        match = re.search(r"open ((https?)://([0-9.]+):(\d+)/)", line)
        if not match:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"dyadic serve did not start: {line!r} {self._read_stderr()[-2000:]}")
        self.url, self.port = match.group(1), int(match.group(4))
        self.ws = f"{'wss' if match.group(2) == 'https' else 'ws'}://{match.group(3)}:{self.port}/ws"

    def status(self) -> dict[str, Any]:
        from .probe import unverified_tls  # the server this harness started, self-signed or not

        context = unverified_tls() if self.url.startswith("https") else None
        with urllib.request.urlopen(self.url + "status", timeout=5, context=context) as r:
            status: dict[str, Any] = json.loads(r.read())
            return status

    def wait_sessions(self, n: int, timeout: float) -> int:
        """Poll /status until `n` sessions are live (or the timeout); returns the last count."""
        deadline = time.monotonic() + timeout
        live: int
        while (live := self.status()["sessions"]) != n and time.monotonic() < deadline:
            time.sleep(0.2)
        return live

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server and its render workers (live or exited)."""
        return sum(process_tree_cpu(self.proc.pid).values())

    def log(self) -> str:
        """What the server has written to stderr so far."""
        return self._read_stderr()

    def _read_stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self) -> str:
        """Terminate; returns what the server wrote to stderr (empty if stopped before)."""
        if self._stderr.closed:
            return ""
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        err = self._read_stderr()
        self._stderr.close()
        return err

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
