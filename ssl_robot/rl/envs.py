"""TrayGoalEnv: goal-conditioned Gymnasium envs over the tray sim, stepped in lockstep with its physics.

    env = make_env(EnvConfig(task='reach', mode='latent'))
    obs, info = env.reset(seed=0)        # obs: {'observation', 'achieved_goal', 'desired_goal'}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

An action is a hand displacement in the horizontal plane, at most action_step_m per axis; a step runs the sim's
ticks of one control period (3 ticks of 30 Hz at 10 Hz) and renders only the task camera, only when the mode
needs images. Episodes last episode_steps steps and are then truncated, never terminated: the goal may be reached
and must be held. `info` carries the ground truth (hand_xy, object_xy, the distances to the true goal and
is_success when the goal is a true state) for evaluation only; the policy never sees it.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from ssl_robot.rl.observers import Observer, make_observer, make_policy_observer, observation_space
from ssl_robot.rl.tasks import (HAND_HEIGHT_M, PUCK_HALF_EXTENT_M, PUSH_OBJECT_SET, EnvConfig, GoalState,
                                action_target, hand_start_away_from, sample_goal_state, state_vector, task_distance,
                                true_distances, uniform_xy)
from ssl_robot.sim.cameras import Camera
from ssl_robot.sim.config import Pose, load_sim_config
from ssl_robot.sim.world import TrayWorld

# Physics run after teleporting the hand or moving the puck, so that contacts resolve before an image is taken.
SETTLE_TICKS = 2
# Seeds of the sim's object spawns are drawn below this bound (TrayWorld.reset takes any non-negative int).
SCENE_SEED_BOUND = 2**31


class TrayGoalEnv(gymnasium.Env):
    """Reach or push over the tray; see the module docstring and EnvConfig for its options."""

    metadata = {'render_modes': ['rgb_array'], 'render_fps': 10}

    def __init__(self, config: EnvConfig = EnvConfig(), render_mode: str | None = None,
                 observer: Observer | None = None) -> None:
        """observer: one to use instead of the one config.mode makes, e.g. a scene-camera VAE's whose images are
        rendered larger and downsampled (ssl_robot.rl.reward_faithfulness)."""
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self.observer: Observer = observer if observer is not None else make_observer(config)
        self.policy_observer = make_policy_observer(config, self.observer)
        self.needs_image = self.observer.needs_image or self.policy_observer.needs_image
        push = config.task == 'push'
        self.sim_config = load_sim_config(rig=config.camera_rig, object_set=PUSH_OBJECT_SET if push else None,
                                          num_objects=1 if push else 0,
                                          image_size=(config.image_size, config.image_size))
        ticks = self.sim_config.tick_rate_hz / config.control_hz
        if ticks < 1 or abs(ticks - round(ticks)) > 1e-9:
            raise ValueError(f'EnvConfig.control_hz ({config.control_hz}) must divide the sim tick rate '
                             f'({self.sim_config.tick_rate_hz} Hz)')
        self.ticks_per_step = int(round(ticks))
        self.world = TrayWorld(self.sim_config)
        self._hand_now = self.world.arm.tcp_pose()[0][:2]
        self._puck_now: np.ndarray | None = None
        self.camera = Camera(self.world.client, self.sim_config.cameras[0])
        self.hand_z = self.sim_config.tray_floor_z + HAND_HEIGHT_M[config.task]
        self.hand_orientation = np.array(self.sim_config.home.orientation_xyzw())

        self.observation_space = observation_space(self.observer, self.policy_observer)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.goal_state: GoalState | None = None
        self.desired_goal = np.zeros(self.observer.dim, np.float32)
        self.steps = 0
        self._image: np.ndarray | None = None

    # --------------------------------------------------------------------------------------------- sim access

    def hand_xy(self) -> np.ndarray:
        """Where the hand is, as of the last physics tick."""
        return self._hand_now.copy()

    def object_xy(self) -> np.ndarray | None:
        """Where the puck is (push), as of the last physics tick."""
        return None if self._puck_now is None else self._puck_now.copy()

    def _hand_pose(self, xy: np.ndarray) -> Pose:
        return Pose(position=(float(xy[0]), float(xy[1]), self.hand_z), rpy_deg=self.sim_config.home.rpy_deg)

    def _teleport(self, hand_xy: np.ndarray, object_xy: np.ndarray | None) -> None:
        """Put the hand (closed gripper) and the puck at these positions, at rest."""
        self.world.arm.teleport(self._hand_pose(hand_xy))
        self.world.arm.set_gripper(True)
        if object_xy is not None:
            self.world.place_object(0, tuple(object_xy))
        self._run_ticks(SETTLE_TICKS)

    def _run_ticks(self, ticks: int) -> None:
        for _ in range(ticks):
            self.world.arm.advance()
            self.world.step_physics()
        self.world.update()
        # Read once per tick batch: the observation, the next action's target and info all use these.
        self._hand_now = self.world.arm.tcp_pose()[0][:2]
        self._puck_now = self.world.object_center(0)[:2] if self.config.task == 'push' else None

    def _render(self) -> None:
        self._image = self.camera.render(self.world.segmentation_lut).rgb if self.needs_image else None

    def _encode(self) -> tuple[np.ndarray, np.ndarray]:
        """(achieved goal, policy observation) of the scene as last rendered."""
        state = state_vector(self.config.task, self.hand_xy(), self.object_xy())
        achieved = self.observer.encode(self._image, state)
        if self.policy_observer is self.observer:
            return achieved, achieved
        return achieved, self.policy_observer.encode(self._image, state)

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        self._render()
        return self._encode()

    def _start_episode(self) -> None:
        self.observer.start_episode(self._image)
        if self.policy_observer is not self.observer:
            self.policy_observer.start_episode(self._image)

    # -------------------------------------------------------------------------------------------------- API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """options: {'goal_state': GoalState} sets the episode's true goal (goal_source is then 'state')."""
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        self.world.reset(int(rng.integers(SCENE_SEED_BOUND)))
        puck = uniform_xy(rng, PUCK_HALF_EXTENT_M) if self.config.task == 'push' else None
        start_hand = hand_start_away_from(rng, puck)
        goal_state = options.get('goal_state')
        if goal_state is None and (self.config.goal_source == 'state' or self.config.mode == 'state'):
            goal_state = sample_goal_state(self.config.task, rng)
        # The start scene first: a CC-VAE encodes the goal under the episode's first image.
        self._teleport(start_hand, puck)
        self._render()
        self._start_episode()
        first = self._encode()
        self.goal_state = goal_state
        if goal_state is None:
            self.desired_goal = self.observer.sample_prior_goals(1, rng)[0]
        else:
            self.desired_goal = self._render_goal(goal_state, start_hand, puck)
            if self.observer.needs_image:
                first = self._observe()
        self.steps = 0
        return self._observation(*first), self._info()

    def _render_goal(self, goal: GoalState, start_hand: np.ndarray, start_puck: np.ndarray | None) -> np.ndarray:
        """The goal vector of a true goal state: the scene is posed as the goal, observed, and put back. The
        oracle's goal is the goal state itself."""
        if (goal.object_xy is None) != (self.config.task != 'push'):
            raise ValueError(f'a {self.config.task} goal state needs object_xy '
                             f'{"set" if self.config.task == "push" else "unset"}, got {goal}')
        if not self.observer.needs_image:
            puck = None if goal.object_xy is None else np.array(goal.object_xy)
            return self.observer.encode(None, state_vector(self.config.task, np.array(goal.hand_xy), puck))
        self._teleport(np.array(goal.hand_xy), None if goal.object_xy is None else np.array(goal.object_xy))
        desired, _ = self._observe()
        self._teleport(start_hand, start_puck)
        return desired

    def step(self, action: np.ndarray):
        target = action_target(self.hand_xy(), action, self.config.action_step_m)
        self.world.arm.set_goal((float(target[0]), float(target[1]), self.hand_z), self.hand_orientation)
        self._run_ticks(self.ticks_per_step)
        self.steps += 1
        achieved, observed = self._observe()
        reward = float(self.observer.reward(achieved, self.desired_goal))
        truncated = self.steps >= self.config.episode_steps
        return self._observation(achieved, observed), reward, False, truncated, self._info()

    def pose_scene(self, hand_xy: np.ndarray, object_xy: np.ndarray | None = None) -> dict[str, Any]:
        """Put the hand (and, for push, the puck) at these positions, at rest, without stepping the episode: a
        probe of what the observer makes of a state (reward faithfulness). Returns the info of the scene as posed;
        observe() then encodes it."""
        if (object_xy is None) != (self.config.task != 'push'):
            raise ValueError(f'a {self.config.task} scene needs object_xy '
                             f'{"set" if self.config.task == "push" else "unset"}, got {object_xy}')
        self._teleport(np.asarray(hand_xy, float), None if object_xy is None else np.asarray(object_xy, float))
        return self._info()

    def observe(self) -> np.ndarray:
        """The observer's vector of the scene as it is now (the achieved goal it would score)."""
        return self._observe()[0]

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Vectorised reward, as HER relabelling calls it: (N, dim) rows -> (N,), or one pair -> a float."""
        return np.asarray(self.observer.reward(achieved_goal, desired_goal), dtype=np.float32)

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, dim) goals imagined from the observer's prior (relabelling's 'prior' goals)."""
        return self.observer.sample_prior_goals(count, rng)

    def render(self) -> np.ndarray | None:
        if self.render_mode != 'rgb_array':
            return None
        return self._image if self._image is not None else self.camera.render(self.world.segmentation_lut).rgb

    def close(self) -> None:
        self.world.close()

    # ------------------------------------------------------------------------------------------------ helpers

    def _observation(self, achieved: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
        return {'observation': observed.copy(), 'achieved_goal': achieved.copy(),
                'desired_goal': self.desired_goal.copy()}

    def _info(self) -> dict[str, Any]:
        hand, puck = self.hand_xy(), self.object_xy()
        info: dict[str, Any] = {'hand_xy': hand}
        if puck is not None:
            info['object_xy'] = puck
        if self.goal_state is not None:
            distances = true_distances(self.config.task, hand, puck, self.goal_state)
            info.update(distances)
            info['is_success'] = task_distance(self.config.task, distances) < self.config.success_distance_m
        return info


def make_env(config: EnvConfig, render_mode: str | None = None) -> TrayGoalEnv:
    return TrayGoalEnv(config, render_mode=render_mode)
