"""The wire format: arrays round-trip exactly; anything else is refused with a message naming it."""

import msgpack
import numpy as np
import pytest

from agent.serving.chunks import ChunkMerger
from agent.serving.codec import WireError, decode_array, packb, unpackb


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32", "float64", "bool"])
def test_arrays_round_trip_exactly(dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    msg = unpackb(packb({"x": a, "nested": {"y": [a[0]]}, "s": "text"}))
    assert msg["x"].dtype == a.dtype and np.array_equal(msg["x"], a)
    assert np.array_equal(msg["nested"]["y"][0], a[0])
    assert msg["s"] == "text"


def test_wrong_byte_count_names_the_array():
    with pytest.raises(WireError, match=r"observation.state has 8 bytes, expected 12"):
        decode_array({"dtype": "float32", "shape": [3], "bytes": b"\0" * 8}, "observation.state")


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"dtype": "object", "shape": [1], "bytes": b"\0" * 8}, "dtype must be one of"),
        ({"dtype": "<f4", "shape": [1], "bytes": b"\0" * 4}, "dtype must be one of"),
        ({"dtype": "float32", "shape": [-1], "bytes": b""}, "shape must be"),
        ({"dtype": "float32", "shape": [1, 1, 1, 1, 1], "bytes": b"\0" * 4}, "shape must be"),
        ({"dtype": "float32", "shape": [1], "bytes": "abcd"}, "bytes must be bytes"),
        ({"dtype": "float32", "shape": [1]}, "must be an array"),
    ],
)
def test_malformed_arrays_are_refused(bad, match):
    with pytest.raises(WireError, match=match):
        decode_array(bad, "a")


def test_garbage_and_extension_types_are_refused():
    with pytest.raises(WireError, match="not valid msgpack"):
        unpackb(b"\xc1\xff garbage")
    with pytest.raises(WireError, match="extension types are not accepted"):
        unpackb(msgpack.packb(msgpack.ExtType(1, b"payload")))
    with pytest.raises(WireError, match="binary msgpack"):
        unpackb("a text frame")
    with pytest.raises(WireError, match="larger than the limit"):
        unpackb(b"\x90" * 11, max_bytes=10)


def test_merger_drops_stale_actions_and_weights_the_oldest_most():
    m = ChunkMerger(coeff=0.5)
    m.add(np.zeros((4, 1)), start_step=0)
    assert m.pop()[0] == 0 and m.pop()[0] == 0  # steps 0 and 1 executed
    # A chunk predicted at step 1 arrives at step 2: its first action is stale.
    assert m.add(np.ones((4, 1)), start_step=1) == 1
    assert len(m) == 3  # steps 2, 3 overlap; step 4 only from the new chunk
    w = np.exp(-0.5)
    assert m.pop()[0] == pytest.approx(w / (1 + w))  # ACT: oldest prediction weight 1, newer exp(-m)
    assert m.pop()[0] == pytest.approx(w / (1 + w))
    assert m.pop()[0] == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="no queued action"):
        m.pop()
