"""goal_sequence_node's parameters (config/goal_sequence.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_length
from ssl_robot.rl.goal_sequence import GoalSequenceConfig


@dataclass(frozen=True, kw_only=True)
class GoalSequenceParams:
    goals: int = 5
    """imagined goals to reach one after another (without goal_positions)"""
    goal_positions: tuple[float, ...] = (0.0,)
    """scene goals: x, y, z of each arm pose made the goal, flattened ([x1, y1, z1, x2, ...]); [0.0] = imagined
    goals"""
    start_position: tuple[float, ...] = (0.6, 0.0, 0.115)
    """where each reach starts: policy_node's start_position"""
    settle_s: float = 2.0
    """node time after a move for the arm to arrive and stop"""
    reach_timeout_s: float = 60.0
    """node time a reach may take before it is given up (its event says done false) and the next goal set"""
    ee_rpy_deg: tuple[float, ...] = (0.0, 180.0, 0.0)
    """hand orientation of the poses it sends (roll, pitch, yaw; deg)"""

    def __post_init__(self) -> None:
        if self.goal_positions != (0.0,) and len(self.goal_positions) % 3:
            raise ValueError(f'parameter goal_positions must hold x, y, z triples, got {len(self.goal_positions)} '
                             f'numbers')
        require_length(self, 'start_position', 3)
        require_length(self, 'ee_rpy_deg', 3)
        self.sequence()  # its own checks (goals, settle_s, reach_timeout_s)

    def sequence(self) -> GoalSequenceConfig:
        flat = () if self.goal_positions == (0.0,) else self.goal_positions
        return GoalSequenceConfig(goals=self.goals, settle_s=self.settle_s, reach_timeout_s=self.reach_timeout_s,
                                  start_position=self.start_position,
                                  goal_positions=tuple(flat[i:i + 3] for i in range(0, len(flat), 3)))
