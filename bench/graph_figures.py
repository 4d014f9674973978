"""The arithmetic of the soak and fault benchmarks, apart from any ROS graph so that tests can check it: memory growth
per node across RSS samples, the fraction of camera sets that got a reward, and when something first happened after
an instant. Times are monotonic nanoseconds; stamps are the sim-time stamps messages carry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NS_PER_S = 1_000_000_000

RssSample = tuple[float, Mapping[str, tuple[int, int]]]
"""(seconds since the run started, node name -> (pid, RSS bytes)), as node_processes.node_memory gives it."""


@dataclass(frozen=True)
class NodeMemory:
    warm_rss: int | None
    """RSS at the first sample taken at or after the warm-up; None if the node was not running then."""
    final_rss: int | None
    """RSS at the last sample; None if the node was not running then."""
    respawned: bool
    """The pid changed between the two samples (or the node was missing from one): growth compares two processes."""

    @property
    def growth(self) -> int | None:
        if self.warm_rss is None or self.final_rss is None or self.respawned:
            return None
        return self.final_rss - self.warm_rss


def memory_growth(samples: list[RssSample], warmup_s: float) -> dict[str, NodeMemory]:
    """Per node seen in any sample: RSS at the end of the warm-up and at the last sample. Samples are in time order;
    ValueError if none was taken at or after warmup_s."""
    warm = next((nodes for seconds, nodes in samples if seconds >= warmup_s), None)
    if warm is None:
        raise ValueError(f'no RSS sample at or after the warm-up ({warmup_s:g} s)')
    final = samples[-1][1]
    names = sorted({name for _, nodes in samples for name in nodes})
    memory = {}
    for name in names:
        warm_pid, warm_rss = warm.get(name, (None, None))
        final_pid, final_rss = final.get(name, (None, None))
        memory[name] = NodeMemory(warm_rss, final_rss, respawned=warm_pid is None or warm_pid != final_pid)
    return memory


@dataclass(frozen=True)
class SetCoverage:
    sets: int
    rewarded: int

    @property
    def fraction(self) -> float:
        return self.rewarded / self.sets if self.sets else 0.0


def set_coverage(set_arrivals: Mapping[int, int], reward_stamps: Iterable[int], from_ns: int, until_ns: int
                 ) -> SetCoverage:
    """Of the camera sets (stamp -> monotonic arrival of its first frame here) that arrived in [from_ns, until_ns),
    how many have a reward carrying their stamp. Rewards of sets outside the window are not counted."""
    counted = {stamp for stamp, arrived_ns in set_arrivals.items() if from_ns <= arrived_ns < until_ns}
    return SetCoverage(len(counted), len(counted.intersection(reward_stamps)))


def first_arrival_stamped_after(arrivals: Mapping[int, int], stamp_ns: int) -> int | None:
    """The earliest arrival (monotonic ns) of a message stamped later than stamp_ns; None if there is none yet."""
    return min((arrived_ns for stamp, arrived_ns in arrivals.items() if stamp > stamp_ns), default=None)


def first_time_after(times_ns: Iterable[int], after_ns: int) -> int | None:
    """The earliest of times_ns later than after_ns; None if there is none yet."""
    return min((t for t in times_ns if t > after_ns), default=None)
