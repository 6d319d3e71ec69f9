"""One model runtime shared by many sessions' threads."""

from __future__ import annotations

import threading

import numpy as np

from dyadic.engine.pipeline.batching import SharedStepper
from dyadic.models.runtime import ReactionSession


def test_shared_stepper_batches_sessions_without_mixing_them(runtime):
    """Four threads stepping through one SharedStepper get exactly what each would alone."""
    stepper = SharedStepper(runtime)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((4, 40, 40)).astype(np.float32)  # session, frame, mel
    expected, got = [], [None] * 4
    for s in range(4):
        alone = ReactionSession(runtime, seed=s, fps=30)
        expected.append(np.stack([alone.step(a, None, None) for a in audio[s]]))

    def run(s):
        shared = ReactionSession(stepper, seed=s, fps=30)
        got[s] = np.stack([shared.step(a, None, None) for a in audio[s]])

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(4):
        np.testing.assert_allclose(got[s], expected[s], atol=1e-5)
    assert stepper.calls == 160 and stepper.batches <= 160
