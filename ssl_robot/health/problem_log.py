"""Per-kind problem reporting for nodes: what /diagnostics counts and what the log warns about, rate-limited per kind.

Pure (no rclpy): a node passes its logger's warning method in.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable


class ProblemLog:
    """A node's problems by kind: counted for /diagnostics, the latest of each kind kept until the next diagnostics
    message, and warned about at most once per warn_period_s per kind, so a flood of one kind hides no other."""

    def __init__(self, warn: Callable[[str], None], warn_period_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (warn_period_s >= 0 and math.isfinite(warn_period_s)):
            raise ValueError(f'warn_period_s must be a finite number >= 0, got {warn_period_s}')
        self._warn = warn
        self._warn_period_s = warn_period_s
        self._clock = clock
        self.counts: Counter[str] = Counter()
        self._recent: dict[str, str] = {}
        self._last_warned: dict[str, float] = {}

    def report(self, kind: str, problem: str) -> None:
        self._recent[kind] = problem
        self.counts[kind] += 1
        now = self._clock()
        if now - self._last_warned.get(kind, -math.inf) >= self._warn_period_s:
            self._last_warned[kind] = now
            self._warn(f'{kind}: {problem}')

    def take_recent(self) -> str:
        """'kind: problem; ...' of each kind reported since the last call ('' if none), and forget them."""
        summary = '; '.join(f'{kind}: {problem}' for kind, problem in self._recent.items())
        self._recent.clear()
        return summary

    def count_values(self) -> dict[str, str]:
        """{'count_<kind>': total} of every kind ever reported, for a DiagnosticStatus's values."""
        return {f'count_{kind}': str(count) for kind, count in sorted(self.counts.items())}
