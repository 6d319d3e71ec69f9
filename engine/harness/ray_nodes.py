"""A real multi-node Ray cluster on this machine's loopback, for tests and benchmarks.

    with RayNodes(nodes=2, cpus_per_node=1) as cluster:     # `ray start --head`, then `ray start --address`
        run(["dyadic", "prepare", ..., "--ray", cluster.address], env=cluster.env)
        cluster.kill_node(1)                                 # a worker node lost mid-job

Each node is a `ray start --block` process of its own (its own session, so that stopping it stops
exactly its raylet and workers, never another Ray of this machine) on its own loopback address:
127.0.0.2 for the head, 127.0.0.3 and up for the others (Ray replaces 127.0.0.1 by the machine's
outward address; the rest of 127.0.0.0/8 it keeps). Every node has a custom resource `node<i>` and
the cluster a fresh authentication token of its own (Ray's token mode), in a temporary folder that
also holds the cluster's session files. Usage statistics are off.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_IP = "127.0.0.2"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RayNodes:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, start_timeout: float = 60.0):
        self.n, self.cpus, self.start_timeout = nodes, cpus_per_node, start_timeout
        self.ips = [f"127.0.0.{2 + i}" for i in range(nodes)]
        self.port = _free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="dyr-"))  # short: Ray's socket paths must fit 107 bytes
        token = self._dir / "token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = dict(
            os.environ,
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(token),
        )
        self._procs: list[subprocess.Popen | None] = []

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def _start(self, i: int) -> subprocess.Popen:
        common = ["--block", "--num-cpus", str(self.cpus), "--resources", f'{{"node{i}": 1}}']
        if i == 0:
            args = ["start", "--head", "--port", str(self.port), "--include-dashboard", "false"]
            args += ["--disable-usage-stats", "--temp-dir", str(self._dir / "tmp")]
        else:
            args = ["start", "--address", self.address]
        args += ["--node-ip-address", self.ips[i], *common]
        log = open(self._dir / f"node{i}.log", "w")
        return subprocess.Popen(
            [self._ray(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_alive(self, count: int) -> None:
        code = (
            "import ray, sys; ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for i, p in enumerate(self._procs):
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"ray node {i} exited: {self.log(i)[-600:]}")
            out = subprocess.run(
                [sys.executable, "-c", code, self.address, HEAD_IP],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray node(s) not alive after {self.start_timeout:.0f} s")

    def log(self, i: int) -> str:
        return (self._dir / f"node{i}.log").read_text(errors="replace")

    def __enter__(self) -> RayNodes:
        try:
            self._procs.append(self._start(0))
            for i in range(1, self.n):
                time.sleep(0.5 if i > 1 else 0.0)
                self._procs.append(self._start(i))
            self._wait_alive(self.n)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def kill_node(self, i: int) -> None:
        """SIGKILL node i's raylet, workers and all (a machine lost), not its `ray start`."""
        proc = self._procs[i]
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        self._procs[i] = None

    def node_processes(self, i: int) -> list[int]:
        """Pids in node i's session (its raylet, workers, ...)."""
        proc = self._procs[i]
        if proc is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=,sid=", "-e"], capture_output=True, text=True).stdout
        return [int(p) for p, s in (line.split() for line in out.splitlines()) if int(s) == proc.pid]

    def __exit__(self, *exc) -> None:
        procs = [p for p in self._procs if p is not None]
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):  # then whatever is left of each session
            for proc in procs:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        self._procs = []
        shutil.rmtree(self._dir, ignore_errors=True)
