"""Per-interaction jobs as Ray tasks: `prepare`, `eval` and `replay --all` fan out through here.

    with ray_cluster(address=None, cpus=None) as cluster:     # local Ray, or a cluster's address
        report = fan_out(work, [(key, args), ...], desc="rendering")
    report.failed, report.retried, report.nodes, report.summary()

One broken item never stops a job: an exception inside `work` is that item's failure (not retried:
it would fail again). A task whose worker or node dies is retried elsewhere by Ray (`max_retries`),
and the report names it, because every attempt records itself with a small actor on the driver's
node before it starts.

Ray is started by the command itself unless `--ray ADDRESS` is given. Two choices keep it on this
machine's loopback and to itself:
- usage statistics off (RAY_USAGE_STATS_ENABLED=0): nothing is sent anywhere;
- a local Ray, and a driver joining a cluster on a loopback address, use a loopback node address.
  Ray replaces 127.0.0.1 by the machine's outward address (its nodes must reach each other), so
  the local instance listens on LOCAL_NODE_IP, another address of the loopback range.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DatasetError

LOCAL_NODE_IP = "127.0.0.2"
REACH_TIMEOUT = 3.0  # seconds: an unreachable --ray address is an error this fast, never a hang
MAX_RETRIES = 3  # Ray's retries of a task whose worker or node died


class ClusterError(DatasetError):
    """A Ray cluster that cannot be started or reached: one line for the user."""


@dataclass
class FanOutReport:
    """What a fanned-out job did, item by item."""

    done: dict[str, Any] = field(default_factory=dict)  # key -> the task's result
    failed: dict[str, str] = field(default_factory=dict)  # key -> one-line error
    retried: dict[str, int] = field(default_factory=dict)  # key -> attempts, for items run more than once
    nodes: Counter = field(default_factory=Counter)  # node address -> items finished there
    seconds: float = 0.0

    def summary(self, what: str = "item") -> list[str]:
        where = ", ".join(f"{n}: {c}" for n, c in sorted(self.nodes.items()))
        lines = [
            f"{len(self.done)} {what}(s) done, {len(self.failed)} failed in {self.seconds:.1f} s"
            + (f" on {len(self.nodes)} node(s) ({where})" if self.nodes else "")
        ]
        if self.retried:
            lines.append(
                "retried after a lost worker or node: "
                + ", ".join(f"{k} ({n} attempts)" for k, n in sorted(self.retried.items()))
            )
        lines += [f"failed: {key}: {error}" for key, error in sorted(self.failed.items())]
        return lines


def _quiet_ray_environment() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"--ray {address}: give the cluster's HOST:PORT (what `ray start --head` printed)")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = REACH_TIMEOUT) -> tuple[str, int]:
    """(host, port) of a cluster address that accepts a TCP connection within `timeout`, else a
    ClusterError: ray.init would otherwise retry for minutes."""
    host, port = _parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(f"--ray {address}: no Ray cluster reachable there ({reason})") from None
    return host, port


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.contextmanager
def ray_cluster(address: str | None = None, cpus: int | None = None, log_to_driver: bool = False) -> Iterator[Any]:
    """Ray for the duration of a job: a local instance with `cpus` CPUs (default: all), or the
    cluster at `address`. Yields the `ray` module; shuts down what it started. `log_to_driver`:
    the workers' output is printed here (training's epoch lines), else it stays in Ray's logs."""
    if address is not None:
        host, _ = check_reachable(address)
    _quiet_ray_environment()
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) already holds one: use it as it is
        yield ray
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": log_to_driver,
    }
    if address is None:
        kwargs.update(num_cpus=cpus or os.cpu_count() or 1, _node_ip_address=LOCAL_NODE_IP)
    else:
        kwargs["address"] = address
        if _is_loopback(host):
            kwargs["_node_ip_address"] = host
    try:
        ray.init(**kwargs)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError here
        where = f"--ray {address}" if address else "a local Ray"
        raise ClusterError(f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    _condense_cluster_errors()
    try:
        yield ray
    finally:
        ray.shutdown()


def _condense_cluster_errors() -> None:
    """Print the cluster's error events (a node lost, a worker killed) as one line each.

    Ray's driver prints each as a block of twenty raylet log lines to stdout, where the command's
    own output goes. A lost node is an expected event of a cluster job: its first line says what
    happened, and fan_out's summary says what was retried. (Ray 2.60's driver looks its printer up
    by this module-level name; the version is pinned in pyproject.toml.)"""
    import ray._private.worker as ray_worker

    def one_line(data: dict, ignore_prefix: bool = False) -> None:
        for text in data.get("lines", []):
            lines = str(text).strip().splitlines()
            if lines:
                print(f"ray: {lines[0][:240]}", file=sys.stderr, flush=True)

    if hasattr(ray_worker, "print_to_stdstream"):
        ray_worker.print_to_stdstream = one_line


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _attempts_actor(ray: Any) -> Any:
    """An actor on the driver's node where each task attempt records (key, node) before it runs."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Attempts:
        def __init__(self) -> None:
            self.log: dict[str, list[str]] = {}

        def started(self, key: str, node: str) -> None:
            self.log.setdefault(key, []).append(node)

        def all(self) -> dict[str, list[str]]:
            return self.log

    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(here, soft=False)
    return Attempts.options(scheduling_strategy=strategy).remote()  # type: ignore[attr-defined]


def _run_one(work: Callable[..., Any], key: str, args: tuple, attempts: Any) -> tuple[bool, Any, str]:
    """Inside a task: (ok, result or one-line error, node address)."""
    import ray

    node = ray.util.get_node_ip_address()
    ray.get(attempts.started.remote(key, node))
    try:
        return True, work(*args), node
    except Exception as exc:  # the item's own failure: reported, never retried
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0], node


def fan_out(
    ray: Any,
    work: Callable[..., Any],
    items: Sequence[tuple[str, tuple]],
    *,
    desc: str,
    unit: str = "item",
    cpus: float = 1,
    gpus: float = 0,
    progress: bool = True,
    on_done: Callable[[str, Any], None] | None = None,
) -> FanOutReport:
    """Run `work(*args)` for every (key, args) as Ray tasks, at most a few per CPU in flight;
    `on_done(key, result)` runs on the driver as each one finishes (in completion order)."""
    from tqdm import tqdm

    report = FanOutReport()
    if not items:
        return report
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False)(_run_one)
    attempts = _attempts_actor(ray)
    work_ref = ray.put(work)
    queue = list(items)[::-1]
    in_flight: dict[Any, str] = {}
    limit = 4 * cluster_cpus(ray)
    t0 = time.perf_counter()
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, smoothing=0.1) as bar:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                key, args = queue.pop()
                in_flight[remote.remote(work_ref, key, args, attempts)] = key
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                key = in_flight.pop(ref)
                try:
                    ok, value, node = ray.get(ref)
                except Exception as exc:  # the task's worker or node died more often than its retries
                    report.failed[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    bar.update(1)
                    continue
                report.nodes[node] += 1
                if ok:
                    report.done[key] = value
                    if on_done is not None:
                        on_done(key, value)
                else:
                    report.failed[key] = value
                bar.update(1)
                bar.set_postfix(failed=len(report.failed), refresh=False)
    report.seconds = time.perf_counter() - t0
    for key, nodes in ray.get(attempts.all.remote()).items():
        if len(nodes) > 1:
            report.retried[key] = len(nodes)
    ray.kill(attempts)
    return report
