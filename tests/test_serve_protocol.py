"""The websocket protocol's parser: every documented message accepted, every bad one named."""

from __future__ import annotations

import pytest

from dyadic.engine.serve import protocol


def test_protocol_accepts_the_documented_messages():
    for msg in (
        '{"type": "play"}',
        '{"type": "seek", "seconds": 3}',
        '{"type": "loop", "on": false}',
        '{"type": "source", "kind": "browser-mic"}',
        '{"type": "ping", "t": 12.5}',
        '{"type": "trace", "on": true, "frame_id": true}',
    ):
        assert protocol.parse(msg).type in protocol.KNOWN_TYPES


@pytest.mark.parametrize(
    "text, request_type",
    [
        ('{"type": "seek", "seconds": NaN}', "seek"),
        ('{"type": "seek", "seconds": -1}', "seek"),
        ('{"type": "loop", "on": "yes"}', "loop"),
        ('{"type": "source", "kind": "clip"}', "source"),
        ('{"type": "trace", "on": 1}', "trace"),
        ('{"type": "trace", "on": true, "frame_id": "yes"}', "trace"),
        ('{"type": 3}', None),
        ('{"type": "nope"}', None),
    ],
)
def test_protocol_errors_name_the_request(text, request_type):
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse(text)
    assert err.value.request == request_type
