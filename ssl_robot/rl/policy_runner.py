"""What policy_node does, without ROS: a trained goal-conditioned policy turned into safe end-effector commands.

    runner = PolicyRunner(policy.act, SafetyLimits(...), expected_model_id, action_step_m=0.02, steps_per_goal=50)
    runner.set_goal(latent, model_id, stamp_ns)          # /goal/latent
    runner.observe(latent, model_id, stamp_ns)           # /latent/scene, every frame
    decision = runner.control(now_ns)                    # at the control rate: a Command, or why there is none

The policy acts on what it was trained on (ssl_robot.rl.envs.TrayGoalEnv in latent mode): the scene's VAE latent as
observation and achieved goal, the goal latent as desired goal. Its action is a hand displacement of at most
action_step_m per axis in the horizontal plane. The runner adds it to its own setpoint (where it last sent the hand;
start_position after enabling), so it needs no hand pose from the robot, which the sim tracks within a control period
(the env adds it to the measured hand position). Then the safety limits apply: the step is shortened to the speed
limit, the target clamped into the workspace box.

No command at all while an input is unusable: no goal, a goal or an observation that is not finite, or of another
model than the policy's VAE (the latents would mean nothing to it), an observation older than max_observation_age_s
when its control tick comes, or the runner disabled. Each of those is a Skip whose kind the node counts on
/diagnostics (problem=True) or only shows in its status (problem=False). Each Command carries the stamp of the
observation it answers; an observation is answered at most once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ssl_robot.inference.model_holder import CHECKPOINTS_DIR, checkpoint_model_id
from ssl_robot.rewards.functions import latent_distance_reward
from ssl_robot.rl.observers import vae_checkpoint_path
from ssl_robot.rl.policy import GoalPolicy, load_policy
from ssl_robot.typed_config import convert_fields

DEFAULT_POLICY = CHECKPOINTS_DIR / 'rl_reach_policy.safetensors'


@dataclass(frozen=True, kw_only=True)
class SafetyLimits:
    """Where and how fast the hand may be sent (from the node's parameters)."""

    workspace_min: tuple[float, float, float]
    """Lowest x, y, z of a target (world frame, m)."""
    workspace_max: tuple[float, float, float]
    """Highest x, y, z of a target."""
    max_speed_mps: float
    """Largest setpoint speed: one control period's step is at most max_speed_mps / control_hz long."""
    control_hz: float
    """Commands per second (of the node's clock: sim time with use_sim_time)."""
    max_observation_age_s: float
    """An observation older than this at its control tick is skipped (stale) and counted."""
    start_position: tuple[float, float, float]
    """The setpoint after enabling: where the first step starts from. z is the hand's height throughout (the
    policy moves it in a horizontal plane)."""

    def __post_init__(self) -> None:
        convert_fields(self)
        low, high = np.array(self.workspace_min), np.array(self.workspace_max)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(low)) or not np.all(np.isfinite(high)):
            raise ValueError(f'workspace_min and workspace_max must be 3 finite numbers each, got '
                             f'{list(self.workspace_min)} and {list(self.workspace_max)}')
        if not np.all(low < high):
            raise ValueError(f'workspace_min {list(self.workspace_min)} must be below workspace_max '
                             f'{list(self.workspace_max)} on every axis')
        for name in ('max_speed_mps', 'control_hz', 'max_observation_age_s'):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')
        start = np.array(self.start_position)
        if start.shape != (3,) or not np.all((low <= start) & (start <= high)):
            raise ValueError(f'start_position {list(self.start_position)} must be 3 numbers inside the workspace '
                             f'{list(self.workspace_min)}..{list(self.workspace_max)}')

    @property
    def max_step_m(self) -> float:
        return self.max_speed_mps / self.control_hz


class Command(NamedTuple):
    position: tuple[float, float, float]
    """The hand's target (world frame, m), within the workspace."""
    stamp_ns: int
    """The stamp of the observation it answers."""


class Skip(NamedTuple):
    kind: str
    """Why no command: a problem kind (stale_observation, bad_goal, bad_observation, wrong_model) or a state
    (disabled, no_goal, no_observation, waiting, done)."""
    reason: str
    problem: bool
    """Counted on /diagnostics (an input the node refused), rather than a state it is in."""


@dataclass
class Latent:
    values: np.ndarray
    model_id: str
    stamp_ns: int


class PolicyRunner:
    """One goal at a time: its id (counted from 1), the steps taken toward it, the latest reward."""

    def __init__(self, act: Callable[[dict[str, np.ndarray]], np.ndarray], limits: SafetyLimits,
                 expected_model_id: str, latent_dim: int, action_step_m: float, steps_per_goal: int,
                 enabled: bool = True) -> None:
        if steps_per_goal < 1:
            raise ValueError(f'steps_per_goal must be >= 1, got {steps_per_goal}')
        self.act = act
        self.limits = limits
        self.expected_model_id = expected_model_id
        self.latent_dim = latent_dim
        self.action_step_m = action_step_m
        self.steps_per_goal = steps_per_goal
        self.goal: Latent | None = None
        self.goal_id = 0
        self.steps = 0
        self.reward: float | None = None
        self._observation: Latent | None = None
        self._answered_ns: int | None = None
        self.setpoint = np.array(limits.start_position, dtype=float)
        self.enabled = False
        self.set_enabled(enabled)

    # ------------------------------------------------------------------------------------------------ inputs

    def _refuse(self, values: np.ndarray, model_id: str, what: str) -> Skip | None:
        values = np.asarray(values)
        if values.shape != (self.latent_dim,):
            return Skip(f'bad_{what}', f'{what} latent has shape {values.shape}, the policy takes '
                                       f'({self.latent_dim},)', True)
        if not np.all(np.isfinite(values)):
            return Skip(f'bad_{what}', f'{what} latent is not finite: {values.tolist()}', True)
        if model_id != self.expected_model_id:
            return Skip('wrong_model', f'{what} latent is of model {model_id!r}, the policy was trained on '
                                       f'{self.expected_model_id!r}', True)
        return None

    def set_goal(self, values: np.ndarray, model_id: str, stamp_ns: int) -> Skip | None:
        """A new goal: steps start again from 0. A refused one (the Skip says why) drops the goal in force, so that
        nothing is reached for until a usable goal comes."""
        refused = self._refuse(values, model_id, 'goal')
        self.goal = None if refused else Latent(np.asarray(values, np.float32).copy(), model_id, stamp_ns)
        if not refused:
            self.goal_id += 1
            self.steps = 0
            self.reward = None
        return refused

    def observe(self, values: np.ndarray, model_id: str, stamp_ns: int) -> Skip | None:
        """The newest scene latent. A refused one (the Skip says why) replaces the previous, so that no command
        answers an older observation in its place."""
        refused = self._refuse(values, model_id, 'observation')
        self._observation = None if refused else Latent(np.asarray(values, np.float32).copy(), model_id, stamp_ns)
        return refused

    def set_enabled(self, enabled: bool) -> None:
        """Enabling starts the setpoint again from start_position."""
        if enabled and not self.enabled:
            self.setpoint = np.array(self.limits.start_position, dtype=float)
        self.enabled = bool(enabled)

    @property
    def done(self) -> bool:
        return self.goal is not None and self.steps >= self.steps_per_goal

    # ----------------------------------------------------------------------------------------------- control

    def control(self, now_ns: int) -> Command | Skip:
        """One control tick: the command answering the newest observation, or why there is none."""
        if not self.enabled:
            return Skip('disabled', 'disabled: no commands until enabled', False)
        if self.goal is None:
            return Skip('no_goal', 'no usable goal', False)
        if self.done:
            return Skip('done', f'goal {self.goal_id} done after {self.steps} steps', False)
        observation = self._observation
        if observation is None:
            return Skip('no_observation', 'no usable scene latent', False)
        age_s = (now_ns - observation.stamp_ns) / 1e9
        if observation.stamp_ns == self._answered_ns:
            if age_s > self.limits.max_observation_age_s:
                return Skip('stale_observation', f'no scene latent for {age_s:.2f} s', True)
            return Skip('waiting', 'the newest scene latent was answered', False)
        self._answered_ns = observation.stamp_ns
        if age_s > self.limits.max_observation_age_s:
            return Skip('stale_observation', f'scene latent stamped {age_s:.2f} s ago (bound '
                                             f'{self.limits.max_observation_age_s} s); skipped', True)
        action = np.asarray(self.act({'observation': observation.values, 'achieved_goal': observation.values,
                                      'desired_goal': self.goal.values}), dtype=float)
        self.reward = float(latent_distance_reward(observation.values, self.goal.values))
        self.setpoint = self.next_setpoint(self.setpoint, action)
        self.steps += 1
        return Command(tuple(float(v) for v in self.setpoint), observation.stamp_ns)

    def next_setpoint(self, setpoint: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The setpoint moved by one action (hand displacement in x, y; z held), shortened to the speed limit and
        clamped into the workspace. A non-finite action moves nothing."""
        action = np.clip(np.nan_to_num(action[:2], nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        step = np.array([action[0], action[1], 0.0]) * self.action_step_m
        length = float(np.linalg.norm(step))
        if length > self.limits.max_step_m:
            step *= self.limits.max_step_m / length
        target = setpoint + step
        target[2] = self.limits.start_position[2]
        return np.clip(target, self.limits.workspace_min, self.limits.workspace_max)

    def status(self) -> dict:
        """What /policy/status says: the goal in force, the steps toward it, the latest reward, done."""
        return {'goal_id': self.goal_id, 'goal_stamp_ns': None if self.goal is None else self.goal.stamp_ns,
                'steps': self.steps, 'reward': self.reward, 'done': self.done, 'enabled': self.enabled,
                'setpoint': [float(v) for v in self.setpoint]}


class PolicyFile:
    """A policy checkpoint kept loaded and up to date with its file, like the nodes' encoders: safetensors only
    (rl.policy.load_policy), reloaded when the file changes, a broken file reported and the old policy kept."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path) if str(path) else DEFAULT_POLICY
        self._stat_key = self._stat()
        self.policy: GoalPolicy = load_policy(self.path)
        self.model_id = self.vae_model_id(self.policy)

    @staticmethod
    def vae_model_id(policy: GoalPolicy) -> str:
        """The model id of the VAE whose latents the policy was trained on, as the goal node names them."""
        if policy.config.env.mode != 'latent':
            raise ValueError(f'policy_node runs latent-mode policies; this one is {policy.config.env.mode}-mode')
        if policy.config.env.observation_mode != 'latent':
            raise ValueError(f'policy_node observes latents; this policy observes {policy.config.env.observation_mode} '
                             f'(env.policy_observation)')
        return checkpoint_model_id(vae_checkpoint_path(policy.config.env))

    def _stat(self) -> tuple[int, ...]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def reload_if_changed(self) -> bool:
        """True if a changed file was loaded; FileNotFoundError, CheckpointError or ValueError if it could not be,
        the old policy kept (the next call tries again)."""
        key = self._stat()
        if key == self._stat_key:
            return False
        policy = load_policy(self.path)
        model_id = self.vae_model_id(policy)
        self.policy, self.model_id, self._stat_key = policy, model_id, key
        return True
