"""A demonstration for the TCN imitation reward as an embedding trajectory, its message form, and the episode clock
that lines live observations up with it. Pure: no rclpy and no torch, so the reward node's alignment logic runs and
is tested without ROS, and the reward node needs no model (the demo is embedded by the embedding node,
ssl_robot.inference.demo_embedding, and reaches the reward node as rows of floats, EmbeddedDemo.to_rows / from_rows).

A live /embeddings fused row and a demo row are comparable exactly when both come from the same weights, which
EmbeddedDemo.matches() checks from the model ids.

Time: the reward node counts a live observation's time from the start of its episode (the /sim/episode event's
stamp). A demo frame's time is counted from the start of the demo's episode as well, so time-index alignment pairs
frames taken equally long after a reset; rewards.DemoTrajectory counts from its first frame, which comes a little
after the reset (images are recorded every few ticks, and an mfTCN embeds only once its first clip is full), and
EmbeddedDemo.demo_time() takes that gap off.

EpisodeClock turns the stamps of one live stream into episode time: an episode starts at a /sim/episode event, or at
the first stamp seen while there has been none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ssl_robot.model_ids import ModelId
from ssl_robot.rewards.functions import DemoTrajectory

NS_PER_S = 1_000_000_000
DEFAULT_CLOCK_JUMP_NS = NS_PER_S
"""As ssl_robot.sync: time going back further than this is a new timeline (a simulator restart, a looping bag)."""


@dataclass(frozen=True)
class EmbeddedDemo:
    """One demonstration episode embedded by one model."""

    trajectory: DemoTrajectory
    """The fused embeddings of the episode's camera sets and their stamps."""
    model_id: str
    """model_holder.LoadedCheckpoint.model_id of the model that embedded it."""
    first_frame_s: float
    """Seconds from the start of the demo's episode to its first embedded frame (0 for a bag without episode
    events, whose demo starts at its first frame)."""

    def demo_time(self, episode_time_s: float) -> float:
        """The trajectory time (seconds after its first frame) of an observation made episode_time_s after its episode
        started; 0 for one made before the demo's first frame, whose nearest frame is the first."""
        return max(0.0, episode_time_s - self.first_frame_s)

    def matches(self, model_id: str) -> bool:
        """Whether embeddings from the model named model_id can be compared with this demo (ModelId.same_weights);
        False if either is no model id."""
        try:
            return ModelId.parse(model_id).same_weights(ModelId.parse(self.model_id))
        except ValueError:
            return False

    def to_rows(self) -> np.ndarray:
        """(T, 1 + D) float32, the demo as the embedding node publishes it: per frame, the seconds since the start of
        the demo's episode, then the fused embedding. float32 seconds keep microseconds over an hour-long episode."""
        times = self.first_frame_s + self.trajectory.times_s
        return np.hstack([times[:, None], self.trajectory.embeddings]).astype(np.float32)

    @classmethod
    def from_rows(cls, rows: np.ndarray, model_id: str) -> EmbeddedDemo:
        """The demo of to_rows(); ValueError naming what is wrong with rows (shape, times not increasing)."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] < 2:
            raise ValueError(f'a demo is (T >= 1, 1 + D >= 2) rows of time and embedding, got shape {rows.shape}')
        times = rows[:, 0].astype(np.float64)
        if times[0] < 0:
            raise ValueError(f'the demo\'s first frame is {times[0]:g} s before its episode started')
        stamps_ns = np.round((times - times[0]) * NS_PER_S).astype(np.int64)
        return cls(DemoTrajectory(rows[:, 1:], stamps_ns), model_id, float(times[0]))


class StampRejected(ValueError):
    """A stamp an EpisodeClock does not place in the current episode; kind names why, for reports."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class EpisodeTime(NamedTuple):
    seconds: float
    """Time since the episode started."""
    first: bool
    """The first observation placed in this episode: where per-episode state (an ImitationReward's match, a CC-VAE
    context) starts over."""


class EpisodeClock:
    """Episode time for one stream of observation stamps (int ns, one clock).

    An episode starts at the stamp given to start_episode (a /sim/episode event) or, while none has been given, at the
    first stamp observed. Within an episode stamps must increase: one at or before the previous is rejected with kind
    'stamp_backwards', and one before the episode's start with kind 'before_episode' (an observation of the previous
    episode that arrived after the event). Time going back by more than clock_jump_ns, from the previous stamp or the
    episode's start, is a new timeline instead (a restarted simulator, a looping bag), whose episode starts there.
    """

    def __init__(self, clock_jump_ns: int = DEFAULT_CLOCK_JUMP_NS) -> None:
        if clock_jump_ns <= 0:
            raise ValueError(f'clock_jump_ns must be > 0, got {clock_jump_ns}')
        self.clock_jump_ns = clock_jump_ns
        self.start_ns: int | None = None
        self._previous_ns: int | None = None

    def start_episode(self, stamp_ns: int) -> bool:
        """A new episode starts at stamp_ns; False if it is the episode already running (a repeated event)."""
        if stamp_ns == self.start_ns:
            return False
        self.start_ns = stamp_ns
        self._previous_ns = None
        return True

    def observe(self, stamp_ns: int) -> EpisodeTime:
        """Place an observation in the current episode; StampRejected if it does not belong there."""
        previous = self._previous_ns
        reference = previous if previous is not None else self.start_ns
        if reference is not None and reference - stamp_ns > self.clock_jump_ns:
            self.start_ns, previous = stamp_ns, None
        elif previous is not None and stamp_ns <= previous:
            raise StampRejected('stamp_backwards', f'stamp {stamp_ns} ns is not after the previous {previous} ns')
        if self.start_ns is None:
            self.start_ns = stamp_ns
        if stamp_ns < self.start_ns:
            raise StampRejected('before_episode', f'stamp {stamp_ns} ns is before the episode start {self.start_ns} '
                                                  f'ns: left over from the previous episode')
        self._previous_ns = stamp_ns
        return EpisodeTime((stamp_ns - self.start_ns) / NS_PER_S, previous is None)
