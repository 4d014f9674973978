"""Which reporters have gone quiet: the pure part of the diagnostics monitor
(ssl_robot/nodes/diagnostics_monitor_node.py).

Every ssl_robot node publishes a status on /diagnostics once a second. A node that dies, hangs or loses its
connection simply stops; nothing in the graph says so. The tracker remembers when each status name was last
heard and lists those silent for longer than a timeout. Times are seconds of any monotonic clock.
"""

from __future__ import annotations

import math


class LivenessTracker:
    def __init__(self, stale_after_s: float) -> None:
        if not (stale_after_s > 0 and math.isfinite(stale_after_s)):
            raise ValueError(f'stale_after_s must be a finite number > 0, got {stale_after_s}')
        self.stale_after_s = stale_after_s
        self._last_heard: dict[str, float] = {}

    def heard(self, name: str, now: float) -> None:
        """`name` reported at `now`: it is alive (again)."""
        self._last_heard[name] = max(now, self._last_heard.get(name, now))

    def stale(self, now: float) -> dict[str, float]:
        """Every name heard before but not within the last stale_after_s, with the seconds since it was heard."""
        return {name: now - last for name, last in sorted(self._last_heard.items())
                if now - last > self.stale_after_s}
