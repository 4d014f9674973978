"""What the goal-conditioned tasks are, independent of how the policy sees them: the env config, the hand's
workspace over the tray, true goal states and the distances that evaluation measures.

  reach   move the gripper to a goal position over the tray (RIG's visual reacher)
  push    push the one puck on the tray to a goal position (RIG's visual pusher); a goal image also shows the hand

Positions are (x, y) in the world frame, in metres. The hand moves in a horizontal plane at a fixed height, as
in RIG's tasks, so a position is two numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ssl_robot.typed_config import convert_fields

TASKS = ('reach', 'push')
MODES = ('state', 'latent', 'pixel')
GOAL_SOURCES = ('prior', 'state')

# The hand's workspace: a square over the tray centre, 7 cm inside the tray's inner walls (0.22 m from the centre)
# so that the fingers never touch a wall.
WORKSPACE_CENTER_XY = (0.6, 0.0)
WORKSPACE_HALF_EXTENT_M = 0.15
# Reach hovers clear of the tray floor; push lowers the closed fingers to the puck's middle (puck 3 cm high).
HAND_HEIGHT_M = {'reach': 0.10, 'push': 0.03}
# The puck starts and its goals lie within this of the centre, so there is room to push it from every side.
PUCK_HALF_EXTENT_M = 0.10
# The hand starts at least this far from the puck's centre (puck radius 3 cm plus the closed fingers).
HAND_CLEARANCE_M = 0.07
PUSH_OBJECT_SET = 'puck'
# Each task's camera rig (sim/rigs/): push needs a narrower view than reach to see its puck.
TASK_RIGS = {'reach': 'task', 'push': 'task_push'}


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """One TrayGoalEnv. Every field is checked on construction; an unknown key in a YAML file is an error."""

    task: Literal['reach', 'push'] = 'reach'
    """reach: the hand to a goal position; push: the puck to a goal position."""
    mode: Literal['state', 'latent', 'pixel'] = 'state'
    """What observations, goals and rewards are made of. state: true positions (the oracle); latent: the VAE
    posterior mean of the task camera image, reward -|z - z_g| (RIG with a beta-VAE, CC-RIG with a CC-VAE
    conditioned on the episode's first frame); pixel: the downsampled image, reward minus the RMS pixel error to
    the goal image (a baseline)."""
    policy_observation: Literal['goal', 'state'] = 'goal'
    """What the policy observes of the scene besides its goal. goal: the achieved goal, mode's vector (as RIG, and
    every shipped config). state: the true positions (the oracle's vector) instead, while goals and reward stay
    mode's; the policy network takes the achieved goal too (SB3 feeds it every key). A diagnostic for latent and
    pixel modes: can their goals and reward teach the task to a policy that knows exactly where things are?"""
    goal_source: Literal['prior', 'state'] = 'prior'
    """Where each episode's goal comes from. prior: imagined, as RIG trains: the VAE prior N(0, I) in latent mode,
    a uniformly drawn goal state in state mode (pixel mode has no prior). state: a true goal state drawn at random,
    rendered as a goal image and encoded, so the final true distance to it is known (evaluation)."""
    episode_steps: int = 50
    """Steps per episode; the episode is truncated after the last one."""
    action_step_m: float = 0.02
    """Largest hand displacement per step and axis, in metres (RIG's pusher: about 2 cm)."""
    control_hz: float = 10.0
    """Steps per second of sim time; the sim's tick rate must be a whole multiple of it."""
    image_size: int = 48
    """Side in pixels of the task camera image (latent and pixel modes); the VAE must take this size."""
    rig: str = ''
    """Camera rig (sim/rigs/<rig>.yaml, or a path) whose first camera is the task camera; '' = the task's own
    (TASK_RIGS: task for reach, task_push for push)."""
    vae_checkpoint: str = ''
    """latent mode: a betavae or ccvae checkpoint trained on task camera images; '' = the shipped one for the
    task (ssl_robot/checkpoints/rl_<task>_vae.safetensors)."""
    pixel_size: int = 16
    """pixel mode: side of the downsampled image that is observation and goal (RGB, so 3 * side^2 numbers)."""
    success_distance_m: float = 0.05
    """Success: the hand (reach) or the puck (push) ends within this of its goal position."""
    state_puck_weight: float = 1.0
    """push, state mode: how much the puck's position counts against the hand's in the oracle's observations,
    goals and reward (1: a metre of either alike). A diagnostic: set it to a VAE's puck / hand steepness
    (`ssl-robot eval-reward --task push`; the shipped push VAE: about 0.2) to ask whether that alone stops
    pushing."""

    @property
    def observation_mode(self) -> str:
        """The mode of the policy's observation vector: mode unless policy_observation names another."""
        return self.mode if self.policy_observation == 'goal' else self.policy_observation

    @property
    def camera_rig(self) -> str:
        """The rig the env renders: rig, or the task's own."""
        return self.rig or TASK_RIGS[self.task]

    def __post_init__(self) -> None:
        convert_fields(self)
        for name in ('episode_steps', 'image_size', 'pixel_size'):
            if getattr(self, name) < 1:
                raise ValueError(f'EnvConfig.{name} must be >= 1, got {getattr(self, name)}')
        for name in ('action_step_m', 'control_hz', 'success_distance_m'):
            if not getattr(self, name) > 0:
                raise ValueError(f'EnvConfig.{name} must be > 0, got {getattr(self, name)}')
        if self.mode == 'pixel' and self.goal_source == 'prior':
            raise ValueError("EnvConfig: pixel mode has no goal prior to imagine goals from: set goal_source: state")
        if not self.state_puck_weight > 0:
            raise ValueError(f'EnvConfig.state_puck_weight must be > 0, got {self.state_puck_weight}')
        if self.state_puck_weight != 1 and (self.task, self.mode) != ('push', 'state'):
            raise ValueError(f'EnvConfig.state_puck_weight ({self.state_puck_weight}) weighs the oracle\'s puck: '
                             f'it needs task push and mode state, not {self.task} and {self.mode}')
        if self.policy_observation == 'state' and self.mode == 'state':
            raise ValueError("EnvConfig.policy_observation 'state' replaces a latent or pixel observation by the "
                             "true state; state mode observes it already: set policy_observation: goal")
        if self.pixel_size > self.image_size:
            raise ValueError(f'EnvConfig.pixel_size ({self.pixel_size}) must not exceed image_size '
                             f'({self.image_size})')


@dataclass(frozen=True)
class GoalState:
    """A true goal: where the hand (and, for push, the puck) should be."""

    hand_xy: tuple[float, float]
    object_xy: tuple[float, float] | None = None


def workspace_bounds() -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of the hand's workspace."""
    center = np.array(WORKSPACE_CENTER_XY)
    return center - WORKSPACE_HALF_EXTENT_M, center + WORKSPACE_HALF_EXTENT_M


def action_target(hand_xy: np.ndarray, action: np.ndarray, action_step_m: float) -> np.ndarray:
    """Where an action sends the hand: at most action_step_m per axis from hand_xy (each action entry is clipped
    to [-1, 1]), kept inside the workspace. ValueError unless the action is 2 finite numbers."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (2,) or not np.all(np.isfinite(action)):
        raise ValueError(f'action must be 2 finite numbers, got {action!r}')
    low, high = workspace_bounds()
    return np.clip(np.asarray(hand_xy, float) + np.clip(action, -1.0, 1.0) * action_step_m, low, high)


def uniform_xy(rng: np.random.Generator, half_extent: float, count: int | None = None) -> np.ndarray:
    """Positions drawn uniformly from a square of the given half extent around the workspace centre."""
    shape = (2,) if count is None else (count, 2)
    return np.array(WORKSPACE_CENTER_XY) + rng.uniform(-half_extent, half_extent, size=shape)


def sample_goal_state(task: str, rng: np.random.Generator) -> GoalState:
    """A goal drawn uniformly: the hand anywhere in the workspace, the puck (push) anywhere it may start."""
    hand = uniform_xy(rng, WORKSPACE_HALF_EXTENT_M)
    puck = uniform_xy(rng, PUCK_HALF_EXTENT_M) if task == 'push' else None
    return GoalState(tuple(hand.tolist()), None if puck is None else tuple(puck.tolist()))


def uniform_xy_clear_of(rng: np.random.Generator, half_extent: float, other_xy: np.ndarray | None) -> np.ndarray:
    """A position drawn as uniform_xy does and, with other_xy set, at least HAND_CLEARANCE_M from it."""
    while True:
        position = uniform_xy(rng, half_extent)
        if other_xy is None or np.linalg.norm(position - other_xy) >= HAND_CLEARANCE_M:
            return position


def hand_start_away_from(rng: np.random.Generator, puck_xy: np.ndarray | None) -> np.ndarray:
    """A start position for the hand, uniform in the workspace and, with a puck, clear of it."""
    return uniform_xy_clear_of(rng, WORKSPACE_HALF_EXTENT_M, puck_xy)


def state_vector(task: str, hand_xy: np.ndarray, object_xy: np.ndarray | None) -> np.ndarray:
    """The oracle's goal space: positions relative to the workspace centre, hand then puck (push)."""
    parts = [np.asarray(hand_xy, float) - WORKSPACE_CENTER_XY]
    if task == 'push':
        parts.append(np.asarray(object_xy, float) - WORKSPACE_CENTER_XY)
    return np.concatenate(parts)


def state_dim(task: str) -> int:
    return 4 if task == 'push' else 2


def true_distances(task: str, hand_xy: np.ndarray, object_xy: np.ndarray | None, goal: GoalState
                   ) -> dict[str, float]:
    """hand_distance, and for push object_distance: metres from where they are to where the goal has them."""
    distances = {'hand_distance': float(np.linalg.norm(np.subtract(hand_xy, goal.hand_xy)))}
    if task == 'push':
        distances['object_distance'] = float(np.linalg.norm(np.subtract(object_xy, goal.object_xy)))
    return distances


def task_distance(task: str, distances: dict[str, float]) -> float:
    """The distance success is judged by: the hand's for reach, the puck's for push."""
    return distances['object_distance' if task == 'push' else 'hand_distance']
