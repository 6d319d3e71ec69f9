"""One model runtime shared by every session, stepping them in batches.

Each session's frame thread calls `step()` with its own batch-of-one inputs, as it would call a
runtime. Calls that arrive while a batch runs are gathered and run as the next batch, one ONNX
Runtime call for all of them (opportunistic batching: no call ever waits for company, so a lone
session pays nothing; under load, sessions share calls). The runtime never runs two batches at once.
"""

from __future__ import annotations

import threading

import numpy as np


class _Call:
    __slots__ = ("done", "error", "inputs", "result")

    def __init__(self, inputs):
        self.inputs = inputs
        self.result = self.error = None
        self.done = threading.Event()


class SharedStepper:
    """Duck-types a runtime (`step`, `layout`, `config`, `initial_hidden`, ...) for ReactionSession."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._running = False
        self.batches = 0
        self.calls = 0

    def __getattr__(self, name):  # layout, config, provider, listener_start, initial_hidden
        return getattr(self.runtime, name)

    def step(self, audio, speaker, speaker_valid, previous, latent, hidden):
        call = _Call((audio, speaker, speaker_valid, previous, latent, hidden))
        with self._lock:
            self._pending.append(call)
            lead = not self._running
            if lead:
                self._running = True
        if lead:
            self._drain()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def _drain(self) -> None:
        """Run batches until nobody waits; the thread that found the runtime idle does this."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._running = False
                    return
            self._run(batch)

    def _run(self, batch: list[_Call]) -> None:
        try:
            stacked = [np.concatenate([c.inputs[i] for c in batch], axis=0) for i in range(5)]
            hidden = np.concatenate([c.inputs[5] for c in batch], axis=1)  # (layers, B, H)
            listener, hidden_out = self.runtime.step(*stacked, hidden)
            for b, call in enumerate(batch):
                call.result = (listener[b : b + 1], hidden_out[:, b : b + 1])
        except Exception as exc:  # every caller of this batch gets the error
            for call in batch:
                call.error = exc
        finally:
            self.batches += 1
            self.calls += len(batch)
            for call in batch:
                call.done.set()
