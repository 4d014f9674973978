"""What a node receives, per input, against what it processes: counts, rates and silence, on the wall clock.

Pure (no rclpy). Silence is judged by when frames arrive (a monotonic wall clock), per input, never by their stamps:
a camera whose stamps are far off (a wrong clock, a replayed bag) still arrives, and a graph whose sim died (no more
/clock, no more stamps) is still seen to be silent. Rates of frames received beside the rates of outputs published
show overload: a node that receives 90 frames/s and publishes 10 sets/s is dropping input.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence


class InputMonitor:
    """Counts of messages received per input, when each last arrived, and rates between two reports."""

    def __init__(self, names: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.names = tuple(names)
        self._clock = clock
        self._started = clock()
        self.received: Counter[str] = Counter()
        self._last_arrival: dict[str, float] = {}
        self._previous: tuple[float, Counter[str]] = (self._started, Counter())

    def arrived(self, name: str) -> None:
        """One message arrived on input name (before it is decoded: a bad message was received all the same)."""
        self.received[name] += 1
        self._last_arrival[name] = self._clock()

    def silent(self, timeout_s: float) -> dict[str, float]:
        """{input: seconds since its last message (or since the start, if none came)} of the inputs silent for more
        than timeout_s."""
        now = self._clock()
        waited = {name: now - self._last_arrival.get(name, self._started) for name in self.names}
        return {name: seconds for name, seconds in waited.items() if seconds > timeout_s}

    def rate_values(self, processed: Mapping[str, int]) -> dict[str, str]:
        """Values for /diagnostics: received_<input> (total), receive_hz_<input> and <key>_hz of each processed count,
        the rates since the previous call (or the start)."""
        now = self._clock()
        since, before = self._previous
        counts = Counter({**{f'received_{name}': self.received[name] for name in self.names}, **processed})
        self._previous = (now, counts)
        elapsed = now - since
        values = {f'received_{name}': str(self.received[name]) for name in self.names}
        for key, count in counts.items():
            rate = (count - before[key]) / elapsed if elapsed > 0 else 0.0
            name = key.removeprefix('received_')
            values[f'receive_hz_{name}' if key.startswith('received_') else f'{key}_hz'] = f'{rate:.1f}'
        return values
