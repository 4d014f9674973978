"""RosGoalEnv's reset and step against a stand-in for the graph (no ROS node): what it sends, which frame answers a
step, the goal it keeps, and the errors it raises. test_rl_ros_env.py runs it against the real nodes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ssl_robot import topics
from ssl_robot.rl.lockstep import (RosEnvConfig, StampedStream, StreamTimeout, step_due_ns,
                                   stream_timeout_message)
from ssl_robot.rl.tasks import EnvConfig, GoalState, action_target
from ssl_robot.rl_ros import RosGoalEnv
from ssl_robot.rl_ros.graph_link import StampedLatent
from ssl_robot.ros.decoders import StampedReward

TICK_NS = 33_333_333
MAX_TICKS = 300  # a wait that needs more ticks than this is a stall
MODEL = 'betavae:test'
SAMPLED_GOAL = np.array([1.0, -1.0], np.float32)


def latent_of(hand_xy: np.ndarray) -> np.ndarray:
    """The stand-in goal node's encoder: a linear map of the hand position."""
    return ((np.asarray(hand_xy, float) - (0.6, 0.0)) * 10).astype(np.float32)


class StandInGraph:
    """The graph in a box, duck-typed as GraphLink: a 30 Hz sim that ticks while the env waits, whose hand is where
    it was last sent; a goal node whose scene latent is latent_of(hand); a reward node scoring against the newest
    goal. Options: replace_first_goal (the goal node's own episode goal arrives one tick after the first goal asked
    for), reward_scale, rewards_stop_after (ticks), reward_model (its model id), ticks_per_step (a stepped sim's ticks
    per /sim/step when config.stepping is on_request: it ticks only then, and renders only the period's last tick)."""

    reward_topic = topics.reward_topic('latent_goal')

    def __init__(self, config: RosEnvConfig, replace_first_goal: bool = False, reward_scale: float = 1.0,
                 rewards_stop_after: int | None = None, reward_model: str = MODEL, ticks_per_step: int = 3) -> None:
        self.config = config
        self.latents: StampedStream[StampedLatent] = StampedStream()
        self.rewards: StampedStream[StampedReward] = StampedStream()
        self.goal: StampedLatent | None = None
        self.goals_received = 0
        self.joint_stamp_ns: int | None = None
        self.joint_velocities = np.zeros(7)
        self.episode_stamp_ns: int | None = None
        self.changed = threading.Condition()
        self.now = 0
        self.hand = np.array([0.15, -0.45])
        self.targets: list[np.ndarray] = []
        self.calls: list[str] = []
        self.replacement_due = replace_first_goal
        self.reward_scale, self.rewards_stop_after, self.reward_model = reward_scale, rewards_stop_after, reward_model
        self.ticks = 0
        self.ticks_per_step = ticks_per_step
        self.periods = 0

    def _tick(self, render: bool = True) -> None:
        self.now += TICK_NS
        self.ticks += 1
        self.joint_stamp_ns = self.now
        if self.replacement_due and self.goal is not None:
            self.replacement_due = False
            self._publish_goal(np.array([-2.0, 2.0], np.float32))
        if not render:
            return
        latent = StampedLatent(self.now, latent_of(self.hand), MODEL)
        self.latents.add(self.now, latent)
        if self.goal is not None and (self.rewards_stop_after is None or self.ticks <= self.rewards_stop_after):
            distance = float(np.linalg.norm(latent.values.astype(float) - self.goal.values))
            self.rewards.add(self.now, StampedReward(self.now, -self.reward_scale * distance, distance,
                                                     self.reward_model))

    def _publish_goal(self, values: np.ndarray) -> None:
        self.goal = StampedLatent(self.now, values, MODEL)
        self.goals_received += 1

    def now_ns(self) -> int:
        return self.now

    def wait(self, ready, what, topic, after_ns=None, newest=lambda: None):
        return self.wait_or_explain(ready, lambda: stream_timeout_message(what, topic, after_ns, newest(),
                                                                          self.config.timeout_s))

    def wait_or_explain(self, ready, explain):
        if self.config.stepped:  # nothing comes unless asked for: all of a period is in once step_sim returns
            if (result := ready()) is not None:
                return result
            raise StreamTimeout(explain())
        for _ in range(MAX_TICKS):
            if (result := ready()) is not None:
                return result
            self._tick()
        raise StreamTimeout(explain())

    def step_sim(self) -> tuple[int, int]:
        assert self.config.stepped, 'a free sim was asked for a period'
        start = self.now
        for tick in range(1, self.ticks_per_step + 1):
            self._tick(render=tick == self.ticks_per_step)
        self.periods += 1
        return start, self.now

    def wait_for_clock(self) -> int:
        assert not self.config.stepped, 'a stepped sim publishes no clock before its first period'
        self._tick()
        return self.now

    def wait_for_target_subscriber(self) -> None:
        pass

    def publish_target(self, position: np.ndarray, orientation_xyzw: np.ndarray) -> None:
        self.targets.append(np.array(position))
        self.hand = np.array(position[:2])

    def call(self, service: str, request) -> None:
        self.calls.append(service)
        if service == topics.RESET_SERVICE:
            self.episode_stamp_ns = self.now + TICK_NS
            self.hand = np.array([0.15, -0.45])
        elif service == topics.GOAL_FROM_SCENE_SERVICE:
            self._publish_goal(latent_of(self.hand))
        elif service == topics.GOAL_SAMPLE_SERVICE:
            self._publish_goal(SAMPLED_GOAL)

    def close(self) -> None:
        pass


@pytest.fixture(scope='module')
def observer():
    from ssl_robot.rl.observers import make_observer
    return make_observer(EnvConfig(mode='latent'))


def make_env(observer, episode_steps: int = 50, goal_source: str = 'prior', stepping: str = 'free',
             **graph_options):
    config = EnvConfig(mode='latent', episode_steps=episode_steps, goal_source=goal_source)
    ros = RosEnvConfig(stepping=stepping)
    graph = StandInGraph(ros, **graph_options)
    return RosGoalEnv(config, ros, observer=observer, graph=graph), graph


def test_reset_poses_the_goal_state_asks_for_it_from_the_scene_and_returns_at_the_start(observer):
    env, graph = make_env(observer)
    obs, info = env.reset(seed=3, options={'goal_state': GoalState((0.5, 0.1))})
    assert graph.calls == [topics.RESET_SERVICE, topics.GRIPPER_SET_CLOSED_SERVICE, topics.GOAL_FROM_SCENE_SERVICE]
    np.testing.assert_allclose(graph.targets[0][:2], (0.5, 0.1))
    assert graph.targets[0][2] == pytest.approx(env.hand_z)
    np.testing.assert_allclose(obs['desired_goal'], latent_of((0.5, 0.1)))
    np.testing.assert_allclose(obs['achieved_goal'], latent_of(graph.targets[1][:2]))
    assert env.observation_space.contains(obs)
    assert info['goal_stamp_ns'] < info['stamp_ns'] and info['stamp_ns'] == graph.latents.newest_stamp()


def test_step_sends_the_bounded_target_and_is_answered_one_control_period_later(observer):
    env, graph = make_env(observer, episode_steps=3)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs['desired_goal'], SAMPLED_GOAL)
    for step in range(3):
        before = env.hand[:2].copy()
        sent_ns = graph.now
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, -2.0]))
        np.testing.assert_allclose(graph.targets[-1][:2], action_target(before, np.array([0.5, -2.0]), 0.02))
        assert info['stamp_ns'] == min(graph.latents.stamps_from(step_due_ns(sent_ns, env.config.control_hz)))
        np.testing.assert_allclose(obs['achieved_goal'], latent_of(graph.targets[-1][:2]))
        assert reward == pytest.approx(float(env.compute_reward(obs['achieved_goal'], obs['desired_goal'], info)),
                                       abs=1e-6)
        assert not terminated and truncated == (step == 2)


def test_a_goal_replaced_before_it_is_scored_is_asked_for_again(observer):
    env, graph = make_env(observer, replace_first_goal=True)
    obs, _ = env.reset(seed=0)
    assert graph.calls.count(topics.GOAL_SAMPLE_SERVICE) == 2
    np.testing.assert_allclose(obs['desired_goal'], SAMPLED_GOAL)


@pytest.mark.parametrize('stepping', ['free', 'on_request'])
def test_a_stopped_reward_stream_is_one_line_naming_the_topic(observer, stepping):
    env, graph = make_env(observer, stepping=stepping)
    env.reset(seed=0)
    graph.rewards_stop_after = graph.ticks
    with pytest.raises(StreamTimeout) as stopped:
        env.step(np.zeros(2))
    message = str(stopped.value)
    assert '\n' not in message and topics.reward_topic('latent_goal') in message


def test_a_stepped_sim_is_asked_for_one_period_per_step_and_answers_with_its_last_tick(observer):
    env, graph = make_env(observer, episode_steps=3, stepping='on_request')
    obs, info = env.reset(seed=3, options={'goal_state': GoalState((0.5, 0.1))})
    assert graph.calls[:2] == [topics.RESET_SERVICE, topics.GRIPPER_SET_CLOSED_SERVICE]
    np.testing.assert_allclose(obs['desired_goal'], latent_of((0.5, 0.1)))
    np.testing.assert_allclose(obs['achieved_goal'], latent_of(graph.targets[1][:2]))
    for step in range(3):
        before, periods, sim_ns = env.hand[:2].copy(), graph.periods, graph.now
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, -2.0]))
        assert graph.periods == periods + 1 and info['stamp_ns'] == graph.now == sim_ns + 3 * TICK_NS
        np.testing.assert_allclose(obs['achieved_goal'], latent_of(action_target(before, np.array([0.5, -2.0]), 0.02)))
        assert reward == pytest.approx(float(env.compute_reward(obs['achieved_goal'], obs['desired_goal'], info)),
                                       abs=1e-6)
        assert truncated == (step == 2)


def test_a_stepped_sim_whose_period_is_not_the_envs_control_period_is_an_error(observer):
    with pytest.raises(ValueError, match='ticks_per_step'):
        make_env(observer, stepping='on_request', ticks_per_step=6)[0].reset(seed=0)


def test_a_scaled_reward_and_another_model_are_refused(observer):
    with pytest.raises(ValueError, match='latent_goal_scale to 1'):
        make_env(observer, reward_scale=2.0)[0].reset(seed=0)
    with pytest.raises(ValueError, match='different models'):
        make_env(observer, reward_model='betavae:other')[0].reset(seed=0)


def test_only_reach_in_latent_mode_is_played(observer):
    with pytest.raises(ValueError, match='reach in latent mode'):
        RosGoalEnv(EnvConfig(mode='state'), RosEnvConfig(), observer=observer, graph=object())


def test_gymnasium_passive_checks_pass(observer):
    """Gymnasium's checks of spaces, reset and step. Not check_env: its determinism check compares info across two
    seeded resets, and info carries the frames' stamps, which a live graph never repeats."""
    from gymnasium.utils.passive_env_checker import (check_action_space, check_observation_space,
                                                      env_reset_passive_checker, env_step_passive_checker)
    env, _ = make_env(observer)
    check_observation_space(env.observation_space)
    check_action_space(env.action_space)
    env_reset_passive_checker(env, seed=0)
    env_step_passive_checker(env, env.action_space.sample())
