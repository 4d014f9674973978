"""End to end in the sim: the real node processes with the shipped checkpoints, the rewards judged by what they must
order (issue 4, item 5). The sim node publishes sim time and every other node runs on it (use_sim_time), so the
motions below are scheduled on the sim clock and hold however fast the machine is.

- Goal reaching (RIG): the goal node makes the scene with the arm at pose A the goal; the latent-goal reward rises as
  the arm steps from pose B to A (Spearman rho > 0.8 between progress and reward).
- Grasp2Vec: the Grasp2Vec node makes the object of the first successful grasp the goal object; over 20 grasps, the
  reward of grasps of that object is higher than that of grasps of others.
- Imitation (TCN): a demonstration recorded here is replayed and a different motion made; the imitation reward is
  higher during the replay.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Int64, String
from std_srvs.srv import Trigger

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.reward_evaluation import spearman_rho, straight_path
from ssl_robot.ros.convert import stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS
from ssl_robot.sim.config import Pose

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_TIME = {'use_sim_time': 'true'}
NS_PER_S = 1_000_000_000
TIMEOUT_S = 120.0
"""Longest wait for anything: node start-up (torch, checkpoints) and sim time on a loaded machine."""
TOP_DOWN = Pose((0.0, 0.0, 0.0)).orientation_xyzw()
SCENE_CAMERA = topics.camera_image('front_left')

# Goal reaching: both poses in view of front_left, the VAEs' camera, the path crossing the tray diagonally.
POSE_A = (0.55, 0.0, 0.12)
POSE_B = (0.7, 0.2, 0.3)
PATH_STEPS = 10
STEP_HOLD_S = 1.0
"""Sim time the arm holds each step of the path; a step is at most 4 cm, which the arm covers in 0.1 s."""
SETTLED_AFTER_S = 0.6
"""Rewards of frames taken this long after a step was commanded score the settled arm."""


class StampedReward(NamedTuple):
    stamp_ns: int
    reward: float
    model_id: str


class SimDriver:
    """The test's side of the sim node: its clock, its episodes, and commands to the arm."""

    def __init__(self, probe: Probe, processes: Sequence[subprocess.Popen]) -> None:
        self.probe = probe
        self.processes = processes
        self.clock_ns = 0
        self.episodes: list[dict] = []
        node = probe.node
        node.create_subscription(Clock, topics.CLOCK, self._on_clock, RELIABLE_QOS)
        node.create_subscription(String, topics.EPISODES, self._on_episode, LATCHED_QOS)
        self._ee_target = node.create_publisher(PoseStamped, topics.EE_TARGET, RELIABLE_QOS)
        self._reset = node.create_publisher(Int64, topics.RESET_WITH_SEED, RELIABLE_QOS)

    def _on_clock(self, message: Clock) -> None:
        with self.probe.lock:
            self.clock_ns = max(self.clock_ns, stamp_to_ns(message.clock))

    def _on_episode(self, message: String) -> None:
        with self.probe.lock:
            self.episodes.append(topics.decode_event(message.data, 'episode'))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
        """probe.wait_for, failing at once with the node logs if one of the graph's processes died."""
        def holds() -> bool:
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(f'{process.args[2]} exited with {process.returncode} while the test waited '
                                         f'for {what}:\n{"".join(process.output)[-3000:]}')
            return condition()
        self.probe.wait_for(holds, timeout, what)

    def wait_until(self, stamp_ns: int) -> None:
        self.wait_for(lambda: self.clock_ns >= stamp_ns, f'sim time {stamp_ns / NS_PER_S:.2f} s')

    def hold(self, seconds: float) -> int:
        """Let sim time pass; the sim time it is then."""
        with self.probe.lock:
            until = self.clock_ns + round(seconds * NS_PER_S)
        self.wait_until(until)
        return until

    def reset(self, seed: int) -> int:
        """Start a new episode with seed (the tray respawned, the arm home); its start stamp."""
        self.wait_for(lambda: self._reset.get_subscription_count() > 0, f'the sim to subscribe {topics.RESET_WITH_SEED}')
        with self.probe.lock:
            known = len(self.episodes)
        self._reset.publish(Int64(data=seed))
        self.wait_for(lambda: len(self.episodes) > known and self.episodes[-1]['seed'] == seed,
                      f'the episode of seed {seed}')
        with self.probe.lock:
            return topics.stamp_from_dict(self.episodes[-1]['stamp'])

    def move_to(self, position: Sequence[float]) -> int:
        """Send the gripper (pointing down) towards position; the sim time it was sent at."""
        self.wait_for(lambda: self._ee_target.get_subscription_count() > 0, f'the sim to subscribe {topics.EE_TARGET}')
        message = PoseStamped()
        message.header.frame_id = topics.WORLD_FRAME
        message.pose.position.x, message.pose.position.y, message.pose.position.z = map(float, position)
        o = message.pose.orientation
        o.x, o.y, o.z, o.w = TOP_DOWN
        with self.probe.lock:
            sent_ns = self.clock_ns
        self._ee_target.publish(message)
        return sent_ns


class RewardStream:
    """Every reward published on /reward/<kind>."""

    def __init__(self, probe: Probe, kind: str) -> None:
        self.probe = probe
        self.rewards: list[StampedReward] = []
        probe.node.create_subscription(Vector3Stamped, topics.reward_topic(kind), self._on_reward, RELIABLE_QOS)

    def _on_reward(self, message: Vector3Stamped) -> None:
        with self.probe.lock:
            self.rewards.append(StampedReward(stamp_to_ns(message.header.stamp), message.vector.x,
                                              message.header.frame_id))

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        """Rewards of the observations stamped in [start_ns, end_ns)."""
        with self.probe.lock:
            return [r.reward for r in self.rewards if start_ns <= r.stamp_ns < end_ns]

    def newest_stamp(self) -> int:
        """For wait_for conditions, which run under probe.lock already."""
        return max((r.stamp_ns for r in self.rewards), default=-1)


@contextlib.contextmanager
def graph(*nodes: tuple[str, str, dict]) -> Iterator[list[subprocess.Popen]]:
    """The node processes (module, name, parameters), started in order and stopped in reverse."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(node_process(f'ssl_robot.nodes.{module}', name, params))
               for module, name, params in nodes]


def call(probe: Probe, sim: SimDriver, service: str) -> Trigger.Response:
    client = probe.node.create_client(Trigger, service)
    sim.wait_for(lambda: client.service_is_ready(), f'service {service}')
    return probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)


@pytest.mark.parametrize('method', ['ccvae', 'betavae'])
def test_latent_goal_reward_rises_as_the_arm_moves_to_the_goal_pose(probe, method):
    """The goal is the scene with the arm at pose A, made the goal by the goal node (/goal/from_scene); stepping the
    arm from pose B to A, the latent-goal reward of the settled frames at each step rises with progress."""
    rewards = RewardStream(probe, 'latent_goal')
    nodes = [('sim_node', 'sim', {'seed': 0}),
             ('goal_node', 'goal', {**SIM_TIME, 'method': method}),
             ('reward_node', 'reward', {**SIM_TIME, 'kinds': '[latent_goal]', 'vae_method': method})]
    with graph(*nodes) as processes:
        sim = SimDriver(probe, processes)
        # Both consumers subscribed before the episode starts, so both take its first frame as the CC-VAE context.
        sim.wait_for(lambda: probe.node.count_subscribers(SCENE_CAMERA) >= 2, 'the goal and reward nodes')
        sim.reset(seed=1)
        sim.hold(0.5)
        at_a_ns = sim.move_to(POSE_A)
        sim.hold(2.0)
        response = call(probe, sim, topics.GOAL_FROM_SCENE_SERVICE)
        assert response.success, response.message
        goal_ns = int(response.message.split('stamped ')[1].split(' ')[0])
        assert goal_ns >= at_a_ns + round(SETTLED_AFTER_S * NS_PER_S), f'the goal frame is not of the arm at A: {response.message}'
        sim.wait_for(lambda: rewards.newest_stamp() > goal_ns, 'latent-goal rewards against the new goal')

        sim.move_to(POSE_B)
        sim.hold(2.0)
        windows = []
        for position in straight_path(POSE_B, POSE_A, PATH_STEPS):
            sent_ns = sim.move_to(position)
            end_ns = sim.hold(STEP_HOLD_S)
            windows.append((sent_ns + round(SETTLED_AFTER_S * NS_PER_S), end_ns))
        sim.wait_for(lambda: rewards.newest_stamp() >= windows[-1][1] - NS_PER_S // 10, 'the last rewards')

    per_step = [rewards.between(*window) for window in windows]
    assert all(per_step), f'steps without a reward of a settled frame: {[len(r) for r in per_step]}'
    means = [float(np.mean(r)) for r in per_step]
    rho = spearman_rho(range(len(means)), means)
    print(f'\n{method}: latent-goal reward along B -> A, {len(means)} steps ({[len(r) for r in per_step]} frames): '
          f'{np.round(means, 3).tolist()}; Spearman rho {rho:.3f}')
    assert rho > 0.8, f'{method}: the reward does not rise toward the goal: rho {rho:.3f}, means {means}'
