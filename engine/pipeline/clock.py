"""The session clock's rules, as a pure object: it is told the time, it never reads it.

Frame k is due when its audio has ended: at `t_anchor + (k - k_anchor + 1) / fps`. The frame thread
sleeps until the next frame is due, then asks which frames are due now:

- **due**: every frame whose audio has ended by `now`, from the next one on. All of them go through
  the source, the features and the model (the model must hear all the audio); only the newest is
  rendered, the others are **dropped** video (counted by the session).
- **re-anchoring**: when more than `max_backlog` frames are due at once the thread was stalled
  (a swap storm, a debugger): the clock starts again from now, the backlog is forgotten and counted
  as a stall, so latency cannot grow with time.
- **a new rate** (a source switch): the clock re-anchors at now with the new rate; frame numbers go
  on counting.
- **repeats**: when no new frame has come for `REPEAT_AFTER_PERIODS` frame periods, the video track
  sends the last one again, so the stream never stalls (`repeat_after()`, which the session hands
  to its track).
"""

from __future__ import annotations

from typing import NamedTuple

MAX_BACKLOG = 15  # frames (0.5 s at 30 FPS): beyond this the thread was stalled; re-anchor
REPEAT_AFTER_PERIODS = 2.0


class Tick(NamedTuple):
    """The frames due at one instant: (index, due time) in order, and whether the clock re-anchored."""

    frames: list[tuple[int, float]]
    stalled: bool

    @property
    def dropped(self) -> int:
        """Due frames whose video is never rendered: all but the newest."""
        return len(self.frames) - 1


class FrameClock:
    """Due times of one session's frames at `fps`, anchored at `now`."""

    def __init__(self, fps: float, now: float, max_backlog: int = MAX_BACKLOG):
        self.fps = float(fps)
        self.max_backlog = max_backlog
        self.next_frame = 0  # the first frame not yet handed out
        self._t_anchor = now
        self._k_anchor = 0

    def due(self, k: int) -> float:
        """When frame k's audio ends."""
        return self._t_anchor + (k - self._k_anchor + 1) / self.fps

    def next_due(self) -> float:
        return self.due(self.next_frame)

    def repeat_after(self) -> float:
        return repeat_after(self.fps)

    def retime(self, fps: float, now: float) -> None:
        """A new rate from `now` on (a new source); the frame count goes on."""
        self.fps = float(fps)
        self._t_anchor, self._k_anchor = now, self.next_frame

    def advance(self, now: float) -> Tick:
        """The frames due by `now` (at least the next one: call it at or after next_due())."""
        k = self.next_frame
        newest = self._k_anchor + int((now - self._t_anchor) * self.fps) - 1  # the last whose audio ended
        newest = max(newest, k)  # `now` a hair before the due time in floating point: still one frame
        stalled = newest - k + 1 > self.max_backlog
        if stalled:  # forget the backlog: frame k is due now
            self._t_anchor, self._k_anchor = now - 1.0 / self.fps, k
            newest = k
        self.next_frame = newest + 1
        return Tick([(j, self.due(j)) for j in range(k, newest + 1)], stalled)


def repeat_after(fps: float) -> float:
    """Seconds without a new frame after which the video track repeats the last one."""
    return REPEAT_AFTER_PERIODS / fps
