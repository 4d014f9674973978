"""RosGoalEnv: TrayGoalEnv's reach task in latent mode, played over a live ROS graph, so that a user's own RL
controller learns from the reward topic.

    env = RosGoalEnv(EnvConfig(mode='latent'), RosEnvConfig())      # a sim graph runs (graph_parameters)
    obs, info = env.reset(seed=0)     # obs: {'observation', 'achieved_goal', 'desired_goal'}, as TrayGoalEnv's
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Spaces, episode length, action size and compute_reward are those of TrayGoalEnv with the same EnvConfig. The graph
must run the task camera and the env's VAE in the goal node, whose latents the reward node scores
(ssl_robot.rl.graph_parameters):

- step publishes the hand target (the commanded hand position plus the action, at most action_step_m per axis, in
  the workspace, at the task's hover height) on /arm/ee_target, then waits on the node's clock (/clock with sim time,
  the system clock on a robot) for the first frame stamped one control period later whose scene latent
  (/latent/scene: observation and achieved goal) and reward (/reward/latent_goal) have both arrived;
- reset resets the sim (/sim/reset), closes the gripper, moves the hand to a start position drawn from the seed and
  asks the goal node for a goal: /goal/sample (goal_source prior, imagined) or, for a true goal state (goal_source
  state, or options={'goal_state': GoalState}), poses the hand there first and makes that scene the goal with
  /goal/from_scene, as TrayGoalEnv renders a goal state. It returns once a reward scored against the new goal arrives.

With RosEnvConfig.stepping 'on_request' the sim (stepping on_request) waits for the env: step publishes the target,
asks /sim/step for one control period and takes the scene latent and reward of that period's last tick; the waits of
reset ask for periods until the arm is at rest, the reset done, a reward scored against the new goal (lockstep).

The hand position an action adds to is the commanded one: the graph publishes no end-effector pose, and the arm
(0.5 m/s) covers a 2 cm step in well under one control period. A wait longer than RosEnvConfig.timeout_s (wall
time) raises lockstep.StreamTimeout with one line naming the topic or service. With a CC-VAE, the reward node's and
goal node's context is the episode's first frame after the reset (arm at home), not the frame at the start position
TrayGoalEnv conditions on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from std_srvs.srv import SetBool, Trigger

from ssl_robot import topics
from ssl_robot.rl.lockstep import (NS_PER_S, RosEnvConfig, StreamTimeout, at_rest, caught_up, check_sim_period,
                                   first_common_stamp, periods_allowed, reward_matches_goal, step_due_ns,
                                   stream_timeout_message)
from ssl_robot.rl.observers import Observer, make_observer
from ssl_robot.rl.tasks import (HAND_HEIGHT_M, EnvConfig, GoalState, action_target, hand_start_away_from,
                                sample_goal_state)
from ssl_robot.rl_ros.graph_link import GraphLink, StampedLatent
from ssl_robot.ros.decoders import StampedReward
from ssl_robot.sim.config import load_sim_config

# Sim seconds added to a hand move's travel time at full speed before the arm is checked for rest: the joints lag
# the speed-limited waypoint.
MOVE_MARGIN_S = 0.3


# Times reset asks for a goal when another one keeps replacing it.
GOAL_ATTEMPTS = 3
BEHIND = object()
"""What a stepped wait's check returns when the streams it watches have caught up with the sim but are not there."""
SILENT_PERIOD_S = 1.0
"""Stepped sim, reset: wall seconds after which a period whose outputs have not all come is followed by another. A node
that subscribed late (one still loading its model at the first reset) missed that period's frame, and a stepped sim
sends no other unless asked; a step's own wait is not patient: its answer is that period's frame."""


class GoalReplaced(Exception):
    """A goal on /goal/latent arrived after the one the env asked for: the reward node scores against the newer."""


class RosGoalEnv(gymnasium.Env):
    """See the module docstring."""

    metadata = {'render_modes': []}

    def __init__(self, config: EnvConfig = EnvConfig(mode='latent'), ros: RosEnvConfig = RosEnvConfig(),
                 domain_id: int | None = None, observer: Observer | None = None, graph: GraphLink | None = None
                 ) -> None:
        """domain_id: the ROS domain (None: ROS_DOMAIN_ID). observer: the one TrayGoalEnv would make of config
        (compute_reward, prior goals), if already built. graph: the link to the graph; None: a GraphLink of its own
        (a test passes a stand-in)."""
        if config.task != 'reach' or config.mode != 'latent':
            raise ValueError(f'RosGoalEnv plays reach in latent mode, got task {config.task!r}, mode {config.mode!r}')
        self.config, self.ros = config, ros
        self.observer = observer if observer is not None else make_observer(config)
        sim_config = load_sim_config(rig=config.camera_rig, num_objects=0)
        self.hand_z = sim_config.tray_floor_z + HAND_HEIGHT_M[config.task]
        self.hand_orientation = np.array(sim_config.home.orientation_xyzw())
        self.home = np.array(sim_config.home.position, float)
        self.max_tcp_speed = sim_config.max_tcp_speed_mps
        box = spaces.Box(-self.observer.bound, self.observer.bound, (self.observer.dim,), np.float32)
        self.observation_space = spaces.Dict({'observation': box, 'achieved_goal': box, 'desired_goal': box})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.graph = graph if graph is not None else GraphLink(ros, self.observer.dim, domain_id)
        self.hand = self.home.copy()
        """The commanded hand position (x, y, z)."""
        self.goal_state: GoalState | None = None
        self.desired_goal = np.zeros(self.observer.dim, np.float32)
        self.goal_stamp_ns: int | None = None
        """The stamp of the frame the episode's goal was drawn from (or made of)."""
        self.steps = 0
        self.sim_ns: int | None = None
        """Stepped sim: the end of the last period asked for, the sim's time."""

    # --- sim time ---------------------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        """The sim's time when stepped (the node's clock may not have its last /clock yet), else the node's clock."""
        return self.sim_ns if self.ros.stepped and self.sim_ns is not None else self.graph.now_ns()

    def _ask_period(self) -> int:
        """Stepped sim: run one control period; its end stamp."""
        start_ns, self.sim_ns = self.graph.step_sim()
        check_sim_period(start_ns, self.sim_ns, self.config.control_hz)
        return self.sim_ns

    def _await(self, ready: Callable[[], Any], explain: Callable[[], str], watched: Callable[[], list[int | None]],
               ask_first: bool, patient: bool = True) -> Any:
        """ready()'s first non-None value, for a wait that needs sim time to pass. A free sim runs on its own; a stepped
        one is asked for a period first (ask_first) and again each time the watched streams (their newest stamps) have
        caught up with it and ready() still does not hold, or (patient) SILENT_PERIOD_S after the last period went
        unanswered; at most timeout_s of sim time and of wall time (lockstep)."""
        graph = self.graph
        if not self.ros.stepped:
            return graph.wait_or_explain(ready, explain)
        started = asked = time.monotonic()

        def ready_or_behind() -> Any:
            result = ready()
            if result is None and (caught_up(watched(), self.sim_ns)
                                   or patient and time.monotonic() - asked > SILENT_PERIOD_S):
                return BEHIND
            return result

        periods = 0
        if ask_first or self.sim_ns is None:
            self._ask_period()
            periods += 1
        while (result := graph.wait_or_explain(ready_or_behind, explain)) is BEHIND:
            if (periods >= periods_allowed(self.ros.timeout_s, self.config.control_hz)
                    or time.monotonic() - started > self.ros.timeout_s):
                raise StreamTimeout(f'{explain()} (asked the sim for {periods} periods)')
            self._ask_period()
            asked = time.monotonic()
            periods += 1
        return result

    # --- moving the hand ------------------------------------------------------------------------------------------

    def _move_hand(self, xy: np.ndarray) -> int:
        """Send the hand to xy at hover height and wait until the arm is at rest there; the stamp it was at rest."""
        target = np.array([xy[0], xy[1], self.hand_z], float)
        travel_s = float(np.linalg.norm(target - self.hand)) / self.max_tcp_speed + MOVE_MARGIN_S
        sent_ns = self._now_ns()
        self.graph.publish_target(target, self.hand_orientation)
        self.hand = target
        due_ns = sent_ns + int(travel_s * NS_PER_S)
        graph = self.graph
        return self._await(lambda: graph.joint_stamp_ns if graph.joint_stamp_ns is not None
                           and graph.joint_stamp_ns >= due_ns
                           and at_rest(graph.joint_velocities, self.ros.at_rest_joint_speed) else None,
                           lambda: stream_timeout_message('waiting for the arm to come to rest', topics.JOINT_STATES,
                                                          due_ns, graph.joint_stamp_ns, self.ros.timeout_s),
                           lambda: [graph.joint_stamp_ns], ask_first=True)

    # --- goals ------------------------------------------------------------------------------------------------------

    def _request_goal(self, service: str, after_ns: int) -> StampedLatent:
        """Ask the goal node for a goal drawn from (or made of) a frame stamped at or after after_ns, and wait for it
        on /goal/latent. The goal node also draws a goal of its own at each episode start: the stamp tells them
        apart."""
        graph = self.graph
        # The goal node has seen such a frame once its scene latent is here.
        self._await(lambda: graph.latents.stamps_from(after_ns) or None,
                    lambda: stream_timeout_message(f'waiting for a frame to ask {service}', topics.SCENE_LATENT,
                                                   after_ns, graph.latents.newest_stamp(), self.ros.timeout_s),
                    lambda: [graph.latents.newest_stamp()], ask_first=False)
        graph.call(service, Trigger.Request())
        return graph.wait(lambda: graph.goal if graph.goal is not None and graph.goal.stamp_ns >= after_ns else None,
                          f'waiting for the goal asked of {service}', topics.GOAL_LATENT, after_ns,
                          lambda: None if graph.goal is None else graph.goal.stamp_ns)

    def _reset_sim(self) -> None:
        """Reset the sim, wait for the tick that did it (its /sim/episode event) and close the gripper: the reset
        sends the arm home with the gripper open, so a command sent before that tick would be undone."""
        graph = self.graph
        called_ns = self._now_ns()
        graph.call(topics.RESET_SERVICE, Trigger.Request())
        self._await(lambda: graph.episode_stamp_ns if graph.episode_stamp_ns is not None
                    and graph.episode_stamp_ns > called_ns else None,
                    lambda: stream_timeout_message('waiting for the reset', topics.EPISODES, called_ns,
                                                   graph.episode_stamp_ns, self.ros.timeout_s),
                    lambda: [graph.joint_stamp_ns], ask_first=True)
        self.hand = self.home.copy()
        graph.call(topics.GRIPPER_SET_CLOSED_SERVICE, SetBool.Request(data=True))

    def _set_goal(self, goal_state: GoalState | None, start: np.ndarray
                  ) -> tuple[StampedLatent, StampedLatent, StampedReward]:
        """Get a goal (a scene goal of goal_state, or an imagined one with the hand at start) and the first scene
        latent and reward scored against it, with the hand at start. The goal node also draws a goal of its own at
        an episode's start; should such a goal replace the one asked for before the reward node scores against it,
        the goal is asked for again."""
        for _ in range(GOAL_ATTEMPTS):
            if goal_state is not None:
                at_goal_ns = self._move_hand(np.array(goal_state.hand_xy))
                goal = self._request_goal(topics.GOAL_FROM_SCENE_SERVICE, at_goal_ns)
                ready_ns = self._move_hand(start)
            else:
                ready_ns = self._move_hand(start)
                goal = self._request_goal(topics.GOAL_SAMPLE_SERVICE, ready_ns)
            try:
                return (goal, *self._scored(ready_ns, goal))
            except GoalReplaced:
                continue
        raise RuntimeError(f'reset: another goal on {topics.GOAL_LATENT} replaced the one asked for, '
                           f'{GOAL_ATTEMPTS} times in a row; does another node ask the goal node for goals?')

    # --- lockstep -----------------------------------------------------------------------------------------------------

    def _scored(self, due_ns: int, goal: StampedLatent | None = None) -> tuple[StampedLatent, StampedReward]:
        """The scene latent and reward of the first frame stamped at or after due_ns that both arrived; with goal,
        the first whose reward is scored against that goal (GoalReplaced if another goal arrived after it)."""
        graph = self.graph
        skipped = [due_ns]

        def ready() -> tuple[StampedLatent, StampedReward] | None:
            if goal is not None and graph.goal is not goal:
                raise GoalReplaced()
            while (stamp := first_common_stamp(graph.latents, graph.rewards, skipped[0])) is not None:
                latent, reward = graph.latents.get(stamp), graph.rewards.get(stamp)
                if goal is None or reward_matches_goal(reward.distance, latent.values, goal.values,
                                                       self.ros.goal_match_tolerance):
                    return latent, reward
                skipped[0] = stamp + 1  # scored against the previous goal
            return None

        def explain() -> str:
            timeout_s = self.ros.timeout_s
            if not graph.latents.stamps_from(due_ns):
                return stream_timeout_message(f'step {self.steps}', topics.SCENE_LATENT, due_ns,
                                              graph.latents.newest_stamp(), timeout_s)
            if goal is None or not graph.rewards.stamps_from(due_ns):
                return stream_timeout_message(f'step {self.steps}', graph.reward_topic, due_ns,
                                              graph.rewards.newest_stamp(), timeout_s)
            stamp = max(set(graph.latents.stamps_from(due_ns)) & set(graph.rewards.stamps_from(due_ns)), default=None)
            newest = '' if stamp is None else (
                f': the newest, stamped {stamp / NS_PER_S:.3f} s, reports |z - z_g| '
                f'{graph.rewards.get(stamp).distance:.6g} where its scene latent is '
                f'{np.linalg.norm(graph.latents.get(stamp).values - goal.values):.6g} from the goal')
            return (f'reset: no message on {graph.reward_topic} scored against the goal on {topics.GOAL_LATENT} '
                    f'(stamped {goal.stamp_ns / NS_PER_S:.3f} s) within {timeout_s:g} s{newest}')

        # Stepped, after a new goal: another period once the newest frame's latent is in, as the reward node scores
        # only the frames after the goal reached it (and none before its first goal); a step's reward is due as is.
        latent, reward = self._await(ready, explain, lambda: [graph.latents.newest_stamp()] + (
            [] if goal is not None else [graph.rewards.newest_stamp()]), ask_first=False, patient=goal is not None)
        models = {latent.model_id, reward.model_id} | ({goal.model_id} if goal is not None else set())
        if len(models) > 1:
            raise ValueError(f'the scene latents ({topics.SCENE_LATENT}), rewards ({graph.reward_topic}) and goal '
                             f'come from different models {sorted(models)}: give the goal node the env\'s VAE')
        return latent, reward

    # --- API ----------------------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """options: {'goal_state': GoalState} sets the episode's true goal (made the goal from the scene)."""
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        graph = self.graph
        if not self.ros.stepped:  # a stepped sim publishes its clock once asked for a period (the reset's)
            graph.wait_for_clock()
        graph.wait_for_target_subscriber()
        start = hand_start_away_from(rng, None)
        goal_state = options.get('goal_state')
        if goal_state is None and self.config.goal_source == 'state':
            goal_state = sample_goal_state(self.config.task, rng)
        if self.ros.sim_services:
            self._reset_sim()
        goal, latent, reward = self._set_goal(goal_state, start)
        self.goal_state = goal_state
        self.desired_goal = goal.values.astype(np.float32)
        self.goal_stamp_ns = goal.stamp_ns
        if not np.isclose(reward.reward, -reward.distance, rtol=1e-5, atol=1e-6):
            raise ValueError(f'{graph.reward_topic} is scaled (reward {reward.reward:g} for distance '
                             f'{reward.distance:g}), but compute_reward is -|z - z_g|: set the reward node\'s '
                             f'{self.ros.reward_kind}_scale to 1')
        self.steps = 0
        return self._observation(latent), self._info(latent, reward)

    def step(self, action: np.ndarray):
        target = action_target(self.hand[:2], action, self.config.action_step_m)
        sent_ns = self.graph.now_ns()
        self.graph.publish_target(np.array([target[0], target[1], self.hand_z]), self.hand_orientation)
        self.hand = np.array([target[0], target[1], self.hand_z])
        self.steps += 1
        # A stepped sim answers with the period's last tick, which the step waits for exactly.
        due_ns = self._ask_period() if self.ros.stepped else step_due_ns(sent_ns, self.config.control_hz)
        latent, reward = self._scored(due_ns)
        truncated = self.steps >= self.config.episode_steps
        return self._observation(latent), reward.reward, False, truncated, self._info(latent, reward)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """TrayGoalEnv's: the reward node's function, -|a - d|, for HER relabelling."""
        return np.asarray(self.observer.reward(achieved_goal, desired_goal), dtype=np.float32)

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return self.observer.sample_prior_goals(count, rng)

    def close(self) -> None:
        self.graph.close()

    def _observation(self, latent: StampedLatent) -> dict[str, np.ndarray]:
        achieved = latent.values.astype(np.float32)
        return {'observation': achieved.copy(), 'achieved_goal': achieved.copy(),
                'desired_goal': self.desired_goal.copy()}

    def _info(self, latent: StampedLatent, reward: StampedReward) -> dict[str, Any]:
        """The frame's stamp, the goal's and the commanded hand position (no ground truth comes over the graph), and
        the true goal's hand position when the goal is a goal state."""
        info: dict[str, Any] = {'stamp_ns': latent.stamp_ns, 'goal_stamp_ns': self.goal_stamp_ns,
                                'hand_target_xy': self.hand[:2].copy(), 'model_id': reward.model_id}
        if self.goal_state is not None:
            info['goal_hand_xy'] = np.array(self.goal_state.hand_xy)
        return info
