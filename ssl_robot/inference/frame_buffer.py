"""The frames of one camera kept for the events that will name them by stamp, bounded in stamp time and in bytes.

Pure (no rclpy, no torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar('Item')
BYTES_PER_MB = 1 << 20


def item_nbytes(item) -> int:
    """Bytes an item holds: its nbytes (a numpy array), or the sum over the arrays of a tuple (a NamedTuple frame)."""
    if hasattr(item, 'nbytes'):
        return int(item.nbytes)
    if isinstance(item, tuple):
        return sum(item_nbytes(part) for part in item)
    return 0


class StampedFrames(Generic[Item]):
    """The frames of one camera from the last span_ns of its stamps, and at most max_bytes of them, looked up by exact
    stamp.

    An event names the frames it refers to by their stamps (the sim stamps them identically across topics), and
    arrives after them, so the frames must be kept until then. A frame older than the newest one starts a new
    timeline (a simulator reset, a looping bag) and empties the buffer, so a lookup never finds a frame of another
    run that happens to carry the same stamp. A frame with the newest stamp again replaces it. Past max_bytes (sizes
    from size_of) the oldest frames go first; the newest frame is always kept, however large. The span alone would let
    memory grow with the image size and rate (30 s of two 640x480 rgb8 cameras at 30 Hz is 1.6 GB).
    """

    def __init__(self, span_ns: int, max_bytes: int | None = None,
                 size_of: Callable[[Item], int] = item_nbytes) -> None:
        if span_ns <= 0:
            raise ValueError(f'span_ns must be > 0, got {span_ns}')
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f'max_bytes must be > 0, got {max_bytes}')
        self.span_ns = span_ns
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._frames: dict[int, tuple[Item, int]] = {}  # stamp -> (frame, its bytes); insertion order is stamp order
        self._newest_ns: int | None = None
        self.nbytes = 0
        """Bytes of the frames held."""

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, stamp_ns: int, frame: Item) -> None:
        if self._newest_ns is not None and stamp_ns < self._newest_ns:
            self._frames.clear()
            self.nbytes = 0
        self._remove(stamp_ns)
        size = self._size_of(frame)
        self._frames[stamp_ns] = (frame, size)
        self.nbytes += size
        self._newest_ns = stamp_ns
        while (oldest_ns := next(iter(self._frames))) < stamp_ns - self.span_ns or (
                self.max_bytes is not None and self.nbytes > self.max_bytes and oldest_ns != stamp_ns):
            self._remove(oldest_ns)

    def _remove(self, stamp_ns: int) -> None:
        removed = self._frames.pop(stamp_ns, None)
        if removed is not None:
            self.nbytes -= removed[1]

    def get(self, stamp_ns: int) -> Item | None:
        held = self._frames.get(stamp_ns)
        return None if held is None else held[0]

    def stamp_range(self) -> tuple[int, int] | None:
        """(oldest, newest) stamp held, None when empty: what a lookup that found nothing could have found."""
        return (next(iter(self._frames)), self._newest_ns) if self._frames else None
