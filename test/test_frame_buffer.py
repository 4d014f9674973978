"""The nodes' frame buffers (ssl_robot.inference.frame_buffer.StampedFrames): bounded by stamp time and by bytes.
Pure."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from ssl_robot.inference.frame_buffer import StampedFrames, item_nbytes


class Frame(NamedTuple):
    rgb: np.ndarray
    frame_id: str


def test_stamped_frames_finds_exact_stamps_within_the_span_and_starts_over_when_time_goes_back():
    frames = StampedFrames[str](span_ns=100)
    assert frames.get(0) is None and frames.stamp_range() is None
    for stamp in (0, 50, 100, 150):
        frames.add(stamp, f'frame {stamp}')
    assert frames.get(50) == 'frame 50' and frames.get(51) is None
    assert frames.get(0) is None and len(frames) == 3 and frames.stamp_range() == (50, 150)  # 0 is > 100 ns old
    frames.add(150, 'frame 150 again')
    assert frames.get(150) == 'frame 150 again' and len(frames) == 3
    frames.add(120, 'new timeline')
    assert len(frames) == 1 and frames.get(50) is None and frames.get(120) == 'new timeline'
    with pytest.raises(ValueError, match='span_ns must be > 0, got 0'):
        StampedFrames(0)


def test_a_byte_bound_evicts_the_oldest_frames_first_and_keeps_the_newest():
    image = np.zeros((10, 10, 3), np.uint8)  # 300 bytes
    frames = StampedFrames[Frame](span_ns=10**12, max_bytes=1000)
    for stamp in range(5):
        frames.add(stamp, Frame(image, 'cam'))
        assert frames.nbytes == 300 * len(frames) <= 1000
    assert frames.stamp_range() == (2, 4) and frames.get(1) is None and frames.get(2) is not None
    frames.add(4, Frame(image[:5], 'cam'))  # the newest stamp again: replaced, its bytes recounted
    assert frames.nbytes == 750 and len(frames) == 3
    frames.add(5, Frame(np.zeros((30, 30, 3), np.uint8), 'cam'))  # larger than the bound alone: kept, alone
    assert len(frames) == 1 and frames.get(5) is not None and frames.nbytes == 2700
    frames.add(3, Frame(image, 'cam'))  # a new timeline empties the buffer and its byte count
    assert len(frames) == 1 and frames.nbytes == 300
    with pytest.raises(ValueError, match='max_bytes must be > 0, got 0'):
        StampedFrames(10, max_bytes=0)


def test_item_sizes_are_the_bytes_of_their_arrays():
    assert item_nbytes(np.zeros(7, np.float32)) == 28
    assert item_nbytes(Frame(np.zeros((2, 3, 3), np.uint8), 'cam')) == 18
    assert item_nbytes('text') == 0
