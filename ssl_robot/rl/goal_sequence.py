"""The main job's script, without ROS: goals one after another, each reached for by policy_node until it is done.

    plan = goal_sequence_plan(GoalSequenceConfig(goals=5, start_position=(0.6, 0.0, 0.115)))

Each step is one thing goal_sequence_node does, in order, waiting for it to finish before the next:

  close_gripper            /gripper/set_closed true (the policy was trained with the fingers closed)
  move (position)          one /arm/ee_target
  settle                   settle_s of node time (sim time), for the arm to get there and stop
  enable (bool)            /policy/enable
  goal ('sample' | 'from_scene')
                           /goal/sample (an imagined goal) or /goal/from_scene (the scene as it is: the arm where the
                           previous move put it), retried until the goal node serves it
  reach (index)            until /policy/status reports a goal newer than the one in force before the last goal
                           step, done, or reach_timeout_s has passed; then the goal's event goes out on
                           /goal_sequence/events (done false when given up)

Imagined goals: the arm starts at start_position, the policy is enabled once, and each next goal starts where the
previous reach ended. Scene goals (goal_positions): for each, the policy is disabled, the arm posed at the goal
position and the scene made the goal, the arm sent back to start_position, then the policy enabled (which starts its
setpoint there too), so every reach covers the same known distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ssl_robot.typed_config import convert_fields

Position = tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class GoalSequenceConfig:
    goals: int = 5
    """Imagined goals to reach, one after another (ignored with goal_positions: one goal per position)."""
    goal_positions: tuple[Position, ...] = ()
    """Scene goals: the arm is posed here and the scene made the goal. Empty: imagined goals (/goal/sample)."""
    start_position: Position = (0.6, 0.0, 0.115)
    """Where each reach starts: policy_node's start_position (its setpoint after enabling)."""
    settle_s: float = 2.0
    """Node time after a move for the arm to arrive and stop (it moves at up to 0.5 m/s in the sim)."""
    reach_timeout_s: float = 60.0
    """Node time a reach may take before it is given up and the next goal set: the policy is done after 50 steps at
    10 Hz (5 s), so this only ends a reach the policy never finishes (no usable goal or scene latent)."""

    def __post_init__(self) -> None:
        convert_fields(self)
        if self.goals < 1:
            raise ValueError(f'goals must be >= 1, got {self.goals}')
        if not (self.settle_s >= 0 and math.isfinite(self.settle_s)):
            raise ValueError(f'settle_s must be a finite number >= 0, got {self.settle_s}')
        if not (self.reach_timeout_s > 0 and math.isfinite(self.reach_timeout_s)):
            raise ValueError(f'reach_timeout_s must be a finite number > 0, got {self.reach_timeout_s}')

    @property
    def scene_goals(self) -> bool:
        return bool(self.goal_positions)


class Step(NamedTuple):
    kind: str
    """close_gripper, move, settle, enable, goal or reach (see the module docstring)."""
    argument: object = None
    """move: the position; enable: the bool; goal: 'sample' or 'from_scene'; reach: the goal's index."""


def goal_sequence_plan(config: GoalSequenceConfig) -> list[Step]:
    """Every step of the job, in order."""
    start = tuple(config.start_position)
    steps = [Step('close_gripper'), Step('move', start), Step('settle')]
    if not config.scene_goals:
        for index in range(config.goals):
            steps += [Step('goal', 'sample')] + ([Step('enable', True)] if index == 0 else [])
            steps.append(Step('reach', index))
        return steps
    for index, position in enumerate(config.goal_positions):
        steps += [Step('enable', False), Step('move', tuple(position)), Step('settle'), Step('goal', 'from_scene'),
                  Step('move', start), Step('settle'), Step('enable', True), Step('reach', index)]
    return steps
