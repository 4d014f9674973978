"""A scripted reach toward an imagined goal, scored by the latent-goal reward: the main job's controller.

Pure (no rclpy): ssl_robot.nodes.goal_reacher_node feeds it the clock and the /reward/latent_goal stream and sends the
waypoints it returns to the arm; the tests drive it with a made-up reward.

The goal is an image the CC-VAE imagined, so where the arm should go is not known in advance: only the reward
r = -|e(s) - e(g)| says how close a view is to it. The script therefore

1. **surveys** a grid of end-effector positions, holding each for hold_s, and scores each by the mean reward of the
   observations stamped in the last score_window_s of its hold (the arm has arrived and settled by then);
2. **approaches** the best-scoring position in a straight line from the worst-scoring one, in approach_steps
   waypoints held as long as the survey's, so the reward can be watched rising along a path toward the goal.

Rewards are matched to waypoints by the stamp of the observation they score, not by when they arrive, so a reward
node that lags behind the camera stream still credits the right position. The survey result is only read once the
last survey window has been closed for decision_delay_s, which gives such late rewards time to arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ssl_robot.reward_evaluation import straight_path

SURVEY = 'survey'
APPROACH = 'approach'
NS_PER_S = 1_000_000_000


def survey_grid(center: Sequence[float], half_extent_m: float, per_side: int) -> list[tuple[float, float, float]]:
    """per_side x per_side positions at center's height, spanning center +- half_extent_m in x and y, row by row
    (x outer, y inner)."""
    if len(center) != 3 or not all(math.isfinite(v) for v in center):
        raise ValueError(f'center must be 3 finite numbers (x, y, z), got {list(center)}')
    if not (half_extent_m > 0 and math.isfinite(half_extent_m)):
        raise ValueError(f'half_extent_m must be a finite number > 0, got {half_extent_m}')
    if per_side < 2:
        raise ValueError(f'per_side must be >= 2 (a survey compares positions), got {per_side}')
    offsets = np.linspace(-half_extent_m, half_extent_m, per_side)
    return [(float(center[0] + dx), float(center[1] + dy), float(center[2])) for dx in offsets for dy in offsets]


@dataclass(frozen=True)
class Waypoint:
    phase: str
    """SURVEY or APPROACH."""
    index: int
    """Position within its phase, from 0."""
    position: tuple[float, float, float]
    """End-effector (TCP) target in the world frame, metres."""
    start_ns: int
    """When the arm was sent there (the controller's clock)."""


@dataclass
class _Scored:
    waypoint: Waypoint
    rewards: list[float] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        return float(np.mean(self.rewards)) if self.rewards else None


class GoalReachingScript:
    """Survey, then approach; see the module docstring. start() once the goal is in force, then update() on every
    controller tick and add_reward() for every reward received; both return nothing to do as None."""

    def __init__(self, survey_positions: Sequence[Sequence[float]], *, hold_s: float, score_window_s: float,
                 approach_steps: int, decision_delay_s: float = 0.5) -> None:
        if len(survey_positions) < 2:
            raise ValueError(f'the survey needs at least 2 positions to compare, got {len(survey_positions)}')
        for name, value in (('hold_s', hold_s), ('score_window_s', score_window_s)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')
        if score_window_s > hold_s:
            raise ValueError(f'score_window_s ({score_window_s}) must not exceed hold_s ({hold_s}): '
                             f'the window is the end of the hold')
        if not (decision_delay_s >= 0 and math.isfinite(decision_delay_s)):
            raise ValueError(f'decision_delay_s must be a finite number >= 0, got {decision_delay_s}')
        if approach_steps < 2:
            raise ValueError(f'approach_steps must be >= 2 (a start and the goal), got {approach_steps}')
        self._survey = [tuple(float(v) for v in p) for p in survey_positions]
        self._hold_ns = int(hold_s * NS_PER_S)
        self._window_ns = int(score_window_s * NS_PER_S)
        self._decision_delay_ns = int(decision_delay_s * NS_PER_S)
        self._approach_steps = approach_steps
        self.visited: list[_Scored] = []
        self._plan: list[tuple[str, int, tuple[float, float, float]]] = []
        self.done = False
        self.failure: str | None = None
        """Why the script ended without an approach (no rewards during the survey), or None."""

    @property
    def current(self) -> Waypoint | None:
        return self.visited[-1].waypoint if self.visited else None

    def start(self, now_ns: int) -> Waypoint:
        if self.visited:
            raise RuntimeError('the script has already started')
        self._plan = [(SURVEY, i, p) for i, p in enumerate(self._survey)]
        return self._next(now_ns)

    def add_reward(self, stamp_ns: int, reward: float) -> None:
        """Credit a reward to the waypoint whose scoring window holds the stamp of the observation it scores."""
        for scored in reversed(self.visited):
            end_ns = scored.waypoint.start_ns + self._hold_ns
            if end_ns - self._window_ns <= stamp_ns < end_ns:
                scored.rewards.append(float(reward))
                return

    def update(self, now_ns: int) -> Waypoint | None:
        """The next waypoint once the current one's hold is over, else None; sets done after the last."""
        current = self.current
        if current is None or self.done or now_ns < current.start_ns + self._hold_ns:
            return None
        if self._plan:
            return self._next(now_ns)
        if current.phase == SURVEY:
            if now_ns < current.start_ns + self._hold_ns + self._decision_delay_ns:
                return None
            return self._plan_approach(now_ns)
        self.done = True
        return None

    @property
    def survey_size(self) -> int:
        return len(self._survey)

    def score(self, waypoint: Waypoint) -> float | None:
        """The mean reward credited to a waypoint this script returned, None while it has none."""
        return next(scored.score for scored in self.visited if scored.waypoint is waypoint)

    def survey_scores(self) -> list[tuple[tuple[float, float, float], float | None]]:
        return self._scores(SURVEY)

    def approach_scores(self) -> list[tuple[tuple[float, float, float], float | None]]:
        return self._scores(APPROACH)

    def _scores(self, phase: str) -> list[tuple[tuple[float, float, float], float | None]]:
        return [(s.waypoint.position, s.score) for s in self.visited if s.waypoint.phase == phase]

    def _next(self, now_ns: int) -> Waypoint:
        phase, index, position = self._plan.pop(0)
        waypoint = Waypoint(phase, index, position, now_ns)
        self.visited.append(_Scored(waypoint))
        return waypoint

    def _plan_approach(self, now_ns: int) -> Waypoint | None:
        scored = [(score, position) for position, score in self.survey_scores() if score is not None]
        if len(scored) < 2:
            self.done = True
            self.failure = (f'only {len(scored)} of {len(self._survey)} survey positions received a reward: '
                            f'is the reward node publishing /reward/latent_goal for this camera and goal?')
            return None
        path = straight_path(min(scored)[1], max(scored)[1], self._approach_steps - 1)  # worst to best
        self._plan = [(APPROACH, k, position) for k, position in enumerate(path)]
        return self._next(now_ns)
