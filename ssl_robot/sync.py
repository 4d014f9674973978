"""Approximate-time synchronization of several stamped streams (cameras, mostly), without ROS.

Semantics follow message_filters' ApproximateTimeSynchronizer: every input keeps a queue of at most
`queue_size` items ordered by stamp, and a set is emitted as soon as one item per input can be chosen
whose stamps span at most `max_interval_ns`; among the possible sets the tightest is taken. Emitting a
set consumes its items and discards everything older on each input, so each input's contributions are
strictly increasing in time and no item is emitted twice.

Because a set is looked for after every arrival, no set is possible before an item arrives, so any
new set must contain the new item: that keeps the search to the combinations around one stamp.

Everything discarded is reported as a `Drop` with a `DropReason`, so a consumer can tell a dead camera
(QUEUE_OVERFLOW on the others, and `silent_inputs`) from a reordering network (OLDER_THAN_EMITTED) or a
simulator reset (CLOCK_JUMP).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any


class DropReason(str, Enum):
    QUEUE_OVERFLOW = 'queue_overflow'
    """The input's queue was full: its oldest item went, usually because another input is silent."""
    DUPLICATE_STAMP = 'duplicate_stamp'
    """The input already delivered an item with this stamp; the first one is kept."""
    OLDER_THAN_EMITTED = 'older_than_emitted'
    """Not newer than the item its input contributed to the last emitted set, so it can never be used."""
    CLOCK_JUMP = 'clock_jump'
    """Queued when time jumped backwards (simulator reset, bag loop), or a leftover of the old timeline."""
    UNKNOWN_INPUT = 'unknown_input'
    """Added under a name the synchronizer was not built with."""


@dataclass(frozen=True)
class SyncedSet:
    stamp_ns: int
    """The newest stamp in the set."""
    items: dict[str, Any]
    stamps: dict[str, int]


@dataclass(frozen=True)
class Drop:
    name: str
    stamp_ns: int
    reason: str
    """A DropReason value."""


@dataclass(frozen=True)
class ClockJump:
    """Time ran backwards: the synchronizer started a new timeline and flushed its queues."""
    name: str
    """The input whose item jumped back."""
    from_ns: int
    """The newest stamp of the old timeline."""
    to_ns: int
    flushed: int
    """Queued items dropped (each also a CLOCK_JUMP Drop)."""


@dataclass
class _Input:
    stamps: list[int]
    items: list[Any]
    last_emitted_ns: int | None = None
    last_received_ns: int | None = None

    def pop_until(self, stamp_ns: int) -> list[int]:
        """Remove the queued items stamped at or before stamp_ns and return their stamps."""
        cut = bisect.bisect_right(self.stamps, stamp_ns)
        removed = self.stamps[:cut]
        del self.stamps[:cut], self.items[:cut]
        return removed


class ApproximateTimeSynchronizer:
    """Groups items from several named inputs into sets whose stamps lie within max_interval_ns.

    Stamps are int nanoseconds on one clock; items are opaque. Time running backwards by more than
    clock_jump_ns (on any input, against the newest stamp seen) starts a new timeline: all queues are
    flushed, and items still arriving from the old timeline are dropped until the new one passes it.
    clock_jump_ns must therefore exceed the largest lag between inputs, or a late input looks like a reset.
    """

    def __init__(self, names: Sequence[str], queue_size: int = 10, max_interval_ns: int = 10_000_000,
                 clock_jump_ns: int = 1_000_000_000) -> None:
        names = list(names)
        if not names:
            raise ValueError('names is empty: the synchronizer needs at least one input')
        if len(set(names)) != len(names):
            raise ValueError(f'names {names!r} has duplicates')
        if queue_size < 1:
            raise ValueError(f'queue_size {queue_size} must be >= 1')
        if max_interval_ns < 0:
            raise ValueError(f'max_interval_ns {max_interval_ns} must be >= 0')
        if clock_jump_ns <= 0:
            raise ValueError(f'clock_jump_ns {clock_jump_ns} must be > 0')
        self.names: tuple[str, ...] = tuple(names)
        self.queue_size = queue_size
        self.max_interval_ns = max_interval_ns
        self.clock_jump_ns = clock_jump_ns
        self.reset()

    def reset(self) -> None:
        """Forget everything: queues, timeline, pending drops and drop counts."""
        self._inputs = {name: _Input([], []) for name in self.names}
        self._newest_ns: int | None = None
        self._abandoned_timeline_end_ns: int | None = None
        self._watch_start_ns: int | None = None
        self._drops: list[Drop] = []
        self._clock_jumps: list[ClockJump] = []
        self._drop_counts = {reason.value: 0 for reason in DropReason}

    @property
    def drop_counts(self) -> Mapping[str, int]:
        """Cumulative drops per DropReason value since construction or reset()."""
        return dict(self._drop_counts)

    def drain_drops(self) -> list[Drop]:
        """The drops since the previous call."""
        drops, self._drops = self._drops, []
        return drops

    def drain_clock_jumps(self) -> list[ClockJump]:
        """The timelines started since the previous call: a consumer warns about them, since a flush loses every
        queued item, and a jump that is not a simulator reset or a bag loop is a clock gone wrong."""
        jumps, self._clock_jumps = self._clock_jumps, []
        return jumps

    def silent_inputs(self, now_ns: int, timeout_ns: int) -> list[str]:
        """Inputs that delivered nothing during the last timeout_ns before now_ns (same clock as the stamps).

        An input that never delivered counts from the first stamp received or the first call to this
        method, whichever came first.
        """
        if self._watch_start_ns is None:
            self._watch_start_ns = now_ns
        deadline = now_ns - timeout_ns
        return [name for name, queue in self._inputs.items()
                if (queue.last_received_ns if queue.last_received_ns is not None else self._watch_start_ns)
                < deadline]

    def add(self, name: str, stamp_ns: int, item: Any) -> list[SyncedSet]:
        """Queue one item and return the sets it completes (empty or one set)."""
        queue = self._inputs.get(name)
        if queue is None:
            self._drop(name, stamp_ns, DropReason.UNKNOWN_INPUT)
            return []
        if self._newest_ns is not None and stamp_ns < self._newest_ns - self.clock_jump_ns:
            self._start_new_timeline(name, stamp_ns)
        elif self._is_old_timeline_leftover(stamp_ns):
            self._drop(name, stamp_ns, DropReason.CLOCK_JUMP)
            return []
        if self._watch_start_ns is None:
            self._watch_start_ns = stamp_ns
        queue.last_received_ns = stamp_ns if queue.last_received_ns is None else max(queue.last_received_ns,
                                                                                      stamp_ns)
        self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
        if (self._abandoned_timeline_end_ns is not None
                and self._newest_ns > self._abandoned_timeline_end_ns):
            self._abandoned_timeline_end_ns = None

        if queue.last_emitted_ns is not None and stamp_ns <= queue.last_emitted_ns:
            reason = (DropReason.DUPLICATE_STAMP if stamp_ns == queue.last_emitted_ns
                      else DropReason.OLDER_THAN_EMITTED)
            self._drop(name, stamp_ns, reason)
            return []
        position = bisect.bisect_left(queue.stamps, stamp_ns)
        if position < len(queue.stamps) and queue.stamps[position] == stamp_ns:
            self._drop(name, stamp_ns, DropReason.DUPLICATE_STAMP)
            return []
        queue.stamps.insert(position, stamp_ns)
        queue.items.insert(position, item)
        if len(queue.stamps) > self.queue_size:
            self._drop(name, queue.stamps[0], DropReason.QUEUE_OVERFLOW)
            del queue.stamps[0], queue.items[0]
            if stamp_ns < queue.stamps[0]:
                return []

        chosen = self._tightest_set_with(name, stamp_ns)
        if chosen is None:
            return []
        return [self._emit(chosen)]

    def _tightest_set_with(self, name: str, stamp_ns: int) -> dict[str, int] | None:
        """The stamps, one per input, of the tightest set containing (name, stamp_ns) within the interval.

        For a fixed earliest stamp `low`, taking on every other input its first stamp >= low gives the
        smallest possible newest stamp, so trying every candidate `low` in [stamp - interval, stamp]
        finds the optimum.
        """
        others = {other: queue.stamps for other, queue in self._inputs.items() if other != name}
        lowest = stamp_ns - self.max_interval_ns
        candidate_lows = {stamp_ns}
        for stamps in others.values():
            candidate_lows.update(stamps[bisect.bisect_left(stamps, lowest):bisect.bisect_right(stamps, stamp_ns)])
        best: dict[str, int] | None = None
        best_span = self.max_interval_ns + 1
        for low in sorted(candidate_lows):
            chosen = {name: stamp_ns}
            for other, stamps in others.items():
                index = bisect.bisect_left(stamps, low)
                if index == len(stamps):
                    break
                chosen[other] = stamps[index]
            else:
                span = max(chosen.values()) - low
                if span < best_span:
                    best, best_span = chosen, span
        return best

    def _emit(self, chosen: dict[str, int]) -> SyncedSet:
        items = {}
        for name, stamp_ns in chosen.items():
            queue = self._inputs[name]
            index = bisect.bisect_left(queue.stamps, stamp_ns)
            items[name] = queue.items[index]
            for older in queue.pop_until(stamp_ns)[:-1]:
                self._drop(name, older, DropReason.OLDER_THAN_EMITTED)
            queue.last_emitted_ns = stamp_ns
        return SyncedSet(stamp_ns=max(chosen.values()), items={name: items[name] for name in self.names},
                         stamps={name: chosen[name] for name in self.names})

    def _start_new_timeline(self, jumped: str, stamp_ns: int) -> None:
        flushed = 0
        for name, queue in self._inputs.items():
            for stamp in queue.pop_until(self._newest_ns):
                self._drop(name, stamp, DropReason.CLOCK_JUMP)
                flushed += 1
            queue.last_emitted_ns = None
            queue.last_received_ns = None
        self._clock_jumps.append(ClockJump(jumped, self._newest_ns, stamp_ns, flushed))
        self._abandoned_timeline_end_ns = self._newest_ns + self.clock_jump_ns
        self._newest_ns = None
        self._watch_start_ns = stamp_ns

    def _is_old_timeline_leftover(self, stamp_ns: int) -> bool:
        # After a reset the other inputs may still deliver a few items stamped on the old timeline:
        # far ahead of the new one, yet no further than the old one had reached.
        return (self._abandoned_timeline_end_ns is not None and self._newest_ns is not None
                and self._newest_ns + self.clock_jump_ns < stamp_ns <= self._abandoned_timeline_end_ns)

    def _drop(self, name: str, stamp_ns: int, reason: DropReason) -> None:
        self._drops.append(Drop(name, stamp_ns, reason.value))
        self._drop_counts[reason.value] += 1
