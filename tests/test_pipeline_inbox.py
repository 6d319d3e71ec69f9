"""Pushed speaker movement: shapes checked, stale frames masked, merged into the speaker frame."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dyadic.engine.pipeline.inbox import MovementInbox


def test_movement_inbox_shapes_and_freshness(runtime):
    inbox = MovementInbox(runtime.layout)
    assert inbox.latest() is None
    inbox.push_channels({"smplh:global_orient": [0.1, 0.2, 0.3]})
    values, valid = inbox.latest()
    g = runtime.layout.names.index("smplh:global_orient")
    assert valid[g] == 1 and valid.sum() == 1
    np.testing.assert_allclose(values[runtime.layout.slices["smplh:global_orient"]], [0.1, 0.2, 0.3])
    c, ng = runtime.layout.size, len(runtime.layout.names)
    inbox.push_binary(np.concatenate([np.ones(c), np.zeros(ng)]).astype("<f4").tobytes())
    assert not inbox.latest()[1].any()  # all masked by the validity tail
    with pytest.raises(ValueError, match="float32"):
        inbox.push_binary(b"\0" * 12)
    with pytest.raises(ValueError, match="finite"):
        inbox.push_binary(np.full(c, np.nan, "<f4").tobytes())
    assert inbox.latest(now=time.monotonic() + 1.0) is None  # stale after 0.5 s


def test_pushed_movement_feeds_the_model_and_poses_a_silent_speaker(runtime):
    from dyadic.engine.contracts import SpeakerFrame

    inbox = MovementInbox(runtime.layout)
    frame = SpeakerFrame(np.zeros(1600, np.float32), captured=0.0)
    assert inbox.merge(frame, time.monotonic()) is frame  # nothing pushed: unchanged
    inbox.push_channels({"smplh:global_orient": [0.1, 0.2, 0.3]})
    merged = inbox.merge(frame, time.monotonic())
    assert merged.movement is not None and merged.movement_valid.sum() == 1
    np.testing.assert_allclose(merged.channels["smplh:global_orient"], [0.1, 0.2, 0.3])
    recorded = SpeakerFrame(frame.audio, captured=0.0, channels={"smplh:global_orient": np.zeros(3)})
    assert inbox.merge(recorded, time.monotonic()).channels is recorded.channels  # its own stay
