"""One model runtime shared by every session, stepping them in batches.

Each session's frame thread calls `step()` with its own batch-of-one inputs, as it would call a
runtime. Calls that arrive while a batch runs are gathered and run as the next batch, one ONNX
Runtime call for all of them (opportunistic batching: no call ever waits for company, so a lone
session pays nothing; under load, sessions share calls). The runtime never runs two batches at once.
"""

from __future__ import annotations

import threading

import numpy as np

from dyadic.models.config import ReactionConfig
from dyadic.models.layout import ChannelLayout
from dyadic.models.step import StepInputs, StepOutputs, Stepper, split, stack


class _Call:
    __slots__ = ("done", "error", "inputs", "result")

    def __init__(self, inputs: StepInputs):
        self.inputs = inputs
        self.result: StepOutputs | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class SharedStepper:
    """A Stepper in front of a runtime (itself a Stepper), for ReactionSession."""

    def __init__(self, runtime: Stepper):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._running = False
        self.batches = 0
        self.calls = 0

    @property
    def config(self) -> ReactionConfig:
        return self.runtime.config

    @property
    def layout(self) -> ChannelLayout:
        return self.runtime.layout

    @property
    def provider(self) -> str:
        return self.runtime.provider

    @property
    def listener_start(self) -> np.ndarray:
        return self.runtime.listener_start

    def initial_hidden(self, batch: int) -> np.ndarray:
        return self.runtime.initial_hidden(batch)

    def step(self, inputs: StepInputs) -> StepOutputs:
        call = _Call(inputs)
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
        assert call.result is not None
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
            out = self.runtime.step(stack([c.inputs for c in batch]))
            for call, part in zip(batch, split(out, [len(c.inputs.audio) for c in batch])):
                call.result = part
        except Exception as exc:  # every caller of this batch gets the error
            for call in batch:
                call.error = exc
        finally:
            self.batches += 1
            self.calls += len(batch)
            for call in batch:
                call.done.set()
