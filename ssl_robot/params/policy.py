"""policy_node's parameters (config/policy.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_length, require_positive
from ssl_robot.params.models import ModelNodeParams


@dataclass(frozen=True, kw_only=True)
class PolicyParams(ModelNodeParams):
    checkpoint: str = ''
    """policy file (safetensors, ssl-robot rl train); empty = the shipped
    ssl_robot/checkpoints/rl_reach_policy.safetensors"""
    enabled: bool = False
    """commands on at start; /policy/enable switches them"""
    workspace_min: tuple[float, ...] = (0.45, -0.15, 0.05)
    """lowest x, y, z of a target (world frame, m)"""
    workspace_max: tuple[float, ...] = (0.75, 0.15, 0.3)
    """highest x, y, z of a target (world frame, m)"""
    max_speed_mps: float = 0.3
    """largest setpoint speed (m/s): a step is at most this / control_hz"""
    control_hz: float = 10.0
    """commands per second of the node clock; the policy was trained at 10 Hz"""
    max_observation_age_s: float = 0.5
    """a scene latent older than this at its control tick is skipped"""
    start_position: tuple[float, ...] = (0.6, 0.0, 0.115)
    """setpoint after enabling (x, y, z; m); z is the hand height throughout (the reach policy: 0.10 m over the tray
    floor)"""
    ee_rpy_deg: tuple[float, ...] = (0.0, 180.0, 0.0)
    """hand orientation of every target (roll, pitch, yaw; deg)"""
    steps_per_goal: int = 50
    """steps toward a goal before it is done (the training episode length)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, 'control_hz')
        require_length(self, 'ee_rpy_deg', 3)
