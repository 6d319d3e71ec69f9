"""A real two-node Ray cluster on loopback (`ray start --head` on 127.0.0.2 and a second
`ray start --address` node on 127.0.0.3, each with one CPU and a resource of its own): `dyadic
prepare --ray` runs its tasks on both nodes, and `dyadic replay --all --ray` survives the second
node being killed mid-job (Ray retries its task on the head), and says so."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dyadic.engine.harness.ray_nodes import RayNodes
from dyadic.models.shards import read_manifest


@pytest.fixture(scope="module")
def cluster():
    with RayNodes(nodes=2, cpus_per_node=1) as nodes:
        yield nodes


def _dyadic(cluster: RayNodes, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dyadic.engine.cli", *argv, "--ray", cluster.address, "-q"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_prepare_runs_its_tasks_on_both_nodes(cluster, sample_root, tmp_path):
    out = _dyadic(cluster, "prepare", str(sample_root / "seamless"), "--out", str(tmp_path), "--shard-frames", "500")
    assert out.returncode == 0, out.stderr
    assert "4 shard(s) done, 0 failed" in out.stderr
    assert "on 2 node(s) (127.0.0.2: " in out.stderr and "127.0.0.3: " in out.stderr
    assert read_manifest(tmp_path)["complete"]


def test_a_node_lost_mid_job_has_its_task_retried_and_the_summary_says_so(cluster, sample_root, tmp_path):
    argv = [sys.executable, "-m", "dyadic.engine.cli", "replay", "--all", "--data", str(sample_root / "seamless")]
    argv += ["--out", str(tmp_path), "--seconds", "2", "--size", "96x72", "--ray", cluster.address, "-q"]
    job = subprocess.Popen(argv, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _running_a_task(cluster, 1):  # the second node has taken a clip
            assert job.poll() is None and time.monotonic() < deadline, "no task reached the second node"
            time.sleep(0.2)
        cluster.kill_node(1)
        _, stderr = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, stderr
    assert "4 clip(s) done, 0 failed" in stderr
    assert "retried after a lost worker or node: V" in stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == [
        "V00_S0809_I00000582.mp4",
        "V00_S0809_I00000583.mp4",
        "V00_S0811_I00000601.mp4",
        "V01_S0346_I00000725.mp4",
    ]


def _running_a_task(cluster: RayNodes, node: int) -> bool:
    for pid in cluster.node_processes(node):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::_run_one"):
                    return True
        except OSError:
            continue
    return False
