"""Shared fixtures: the generated sample data is written once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Every data folder a test makes gets a catalog index (datasets/catalog.py): they go to a folder of
# this run's own, removed at its end, not into the user's cache. Servers the tests start inherit it.
os.environ.setdefault("DYADIC_CATALOG", tempfile.mkdtemp(prefix="dyadic-test-catalog-"))


def pytest_sessionfinish(session, exitstatus):
    folder = os.environ.get("DYADIC_CATALOG", "")
    if os.path.basename(folder).startswith("dyadic-test-catalog-"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """The default sample (`seamless/` + `react/`), as `default_sample_root()` ships it."""
    from dyadic.datasets.sample import generate_default_sample

    return generate_default_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def runtime():
    """The shipped Seamless reaction model on ONNX Runtime's CPU provider."""
    from dyadic.models.runtime import load_runtime
    from dyadic.models.shipped import default_model_path

    return load_runtime(default_model_path("seamless"), "cpu")


@pytest.fixture(scope="session")
def decode_mp4():
    """(video frames, average rate, mono audio float32) of an MP4, as PyAV decodes it."""

    def decode(path):
        import av
        import numpy as np

        with av.open(str(path)) as c:
            rate = c.streams.video[0].average_rate
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        return frames, rate, audio

    return decode


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray (2 CPUs) for a module whose tests run Ray jobs in this process: `prepare`,
    `eval`, `replay --all` use it as it is instead of starting their own (datasets/fanout.py).
    Stopped after the module: its idle daemons would take CPU from the real-time tests."""
    from dyadic.datasets.fanout import ray_cluster

    with ray_cluster(cpus=2) as ray:
        yield ray
