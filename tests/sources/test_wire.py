"""The wire format: any valid chunk round-trips exactly; any bad input is a FrameError."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sources.base import Chunk
from sources.wire import (
    HEADER,
    PART,
    FrameError,
    GapCounter,
    decode_frames,
    decode_stream_frame,
    encode_frames,
    encode_stream,
)

LIMIT = 1 << 20


@st.composite
def chunks(draw) -> Chunk:
    """Random valid chunks: [T, C] or [T, B, C] float32 with any mix of targets."""
    lead = draw(st.sampled_from([1, 2]))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=lead, max_size=lead)))
    channels = draw(st.integers(1, 5))
    x = draw(hnp.arrays(np.float32, shape + (channels,)))
    y = draw(st.sampled_from([None, "class", "regression"]))
    if y == "class":
        y = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1, 9)))
    elif y == "regression":
        y = draw(hnp.arrays(np.float32, shape + (draw(st.integers(1, 3)),)))
    mask = draw(st.none() | hnp.arrays(np.bool_, shape))
    boundary = draw(st.none() | hnp.arrays(np.bool_, shape))
    return Chunk(x=x, y=y, mask=mask, boundary=boundary, seq=draw(st.integers(0, 2**62)),
                 timestamp=draw(st.floats(0, 2e9)))


def assert_same(a: Chunk, b: Chunk) -> None:
    assert (a.seq, a.timestamp) == (b.seq, b.timestamp)
    for name in ("x", "y", "mask", "boundary"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None), name
        if left is not None:
            assert left.dtype == right.dtype and left.shape == right.shape, name
            assert left.tobytes() == right.tobytes(), name  # bit-exact, NaNs included


@settings(max_examples=150, deadline=None)
@given(chunks())
def test_random_chunks_round_trip_through_zeromq_frames(chunk: Chunk) -> None:
    frames = [bytes(f) for f in encode_frames(chunk)]
    assert_same(chunk, decode_frames(frames, LIMIT))


@settings(max_examples=150, deadline=None)
@given(chunks())
def test_random_chunks_round_trip_through_tcp_frames(chunk: Chunk) -> None:
    pieces = b"".join(bytes(p) for p in encode_stream(chunk))
    (length,) = struct.unpack_from("<I", pieces)
    assert length == len(pieces) - 4
    assert_same(chunk, decode_stream_frame(pieces[4:], LIMIT))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_not_crashing(data: bytes) -> None:
    for decode in (lambda: decode_stream_frame(data, LIMIT),
                   lambda: decode_frames([data], LIMIT),
                   lambda: decode_frames([data[:40], data[40:]], LIMIT)):
        with pytest.raises(FrameError):
            decode()


@settings(max_examples=150, deadline=None)
@given(chunks(), st.data())
def test_truncated_or_padded_frames_are_rejected(chunk: Chunk, data) -> None:
    frame = b"".join(bytes(p) for p in encode_stream(chunk))[4:]
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(FrameError):
        decode_stream_frame(frame[:cut], LIMIT)
    with pytest.raises(FrameError):
        decode_stream_frame(frame + b"\0", LIMIT)
    frames = [bytes(f) for f in encode_frames(chunk)]
    if len(frames[1]):
        with pytest.raises(FrameError):
            decode_frames([frames[0], frames[1][:-1], *frames[2:]], LIMIT)


def test_oversized_declared_shape_is_rejected_before_allocation() -> None:
    header = HEADER.pack(b"HYS1", 1, 1, 0, 0, 0.0) + PART.pack(0, 0, 2, 0) + struct.pack(
        "<2I", 2**31, 2**31
    )
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="limit"):
            decode_frames([header, b"\0" * 16], LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_wrong_dtype_for_x_is_rejected() -> None:
    chunk = Chunk(x=np.zeros((3, 2), np.float64))
    with pytest.raises(FrameError, match="float32"):
        decode_frames([bytes(f) for f in encode_frames(chunk)], LIMIT)


def test_mismatched_target_shape_is_rejected() -> None:
    chunk = Chunk(x=np.zeros((3, 2), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(FrameError, match="y must be"):
        decode_frames([bytes(f) for f in encode_frames(chunk)], LIMIT)


def test_gap_counter_counts_skips_and_forgives_restarts() -> None:
    gaps = GapCounter()
    assert [gaps.lost(s) for s in (0, 1, 4, 5, 0, 2)] == [0, 0, 2, 0, 0, 1]
    assert gaps.lost(7, b"a") == 0 and gaps.lost(9, b"a") == 1
