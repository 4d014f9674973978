"""RosGoalEnv over a live graph (sim, goal and reward nodes as processes, with graph_parameters), with a free-running
sim and with a stepped one (stepping on_request on both sides): on the states the graph visits, its observations, goal
and rewards equal those TrayGoalEnv's latent mode computes in process, and a reward stream that stops is one line naming
the topic.

"The same states": the in-process env's arm is put into the joint positions /joint_states reported at each frame's
stamp, its task camera renders that scene and its observer encodes and scores it against the goal the graph gave.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pybullet
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from ros_harness import running
from ssl_robot import topics
from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.graph_parameters import graph_parameters, node_commands, task_camera_topic
from ssl_robot.rl.lockstep import RosEnvConfig, StreamTimeout
from ssl_robot.rl.observers import make_observer
from ssl_robot.rl.tasks import EnvConfig, GoalState
from ssl_robot.rl_ros import RosGoalEnv
from ssl_robot.ros.convert import stamp_to_ns
from ssl_robot.ros.decoders import rgb_frame
from ssl_robot.ros.qos import SENSOR_QOS

pytestmark = pytest.mark.ros

# Generous: a wait that fails is a real stall, whatever the load on the machine. The env's own bound is also how long
# the last step waits for the stopped reward stream.
STARTUP_TIMEOUT_S = 180.0
TIMEOUT_S = 30.0
STEPS = 8
# Float32 latents through 32FC1 messages against float32 latents in process; the images themselves are identical.
TOLERANCE = 1e-4


def assert_a_stopped_reward_node_fails_the_next_step_in_one_line(env: RosGoalEnv, reward_node) -> None:
    reward_node.send_signal(2)
    reward_node.wait(timeout=TIMEOUT_S)
    with pytest.raises(StreamTimeout) as stopped:
        env.step(np.zeros(2))
    message = str(stopped.value)
    assert '\n' not in message and topics.reward_topic('latent_goal') in message


def pose_joints(env: TrayGoalEnv, names: list[str], positions: list[float]) -> None:
    """Put the in-process arm into these joint positions, as the graph's arm was."""
    arm = env.world.arm
    for name, position in zip(names, positions):
        pybullet.resetJointState(arm.body, arm.joint_indices[arm.joint_names.index(name)], position,
                                 physicsClientId=env.world.client)


@pytest.mark.parametrize('stepping', ['free', 'on_request'])
def test_ros_env_matches_the_in_process_env_and_a_stopped_reward_stream_is_a_one_line_error(probe, ros_domain_id,
                                                                                             stepping):
    config = EnvConfig(mode='latent', goal_source='state', episode_steps=STEPS)
    joints: dict[int, tuple[list[str], list[float]]] = {}

    frames: dict[int, np.ndarray] = {}

    def on_joints(message: JointState) -> None:
        with probe.lock:
            joints[stamp_to_ns(message.header.stamp)] = (list(message.name), list(message.position))

    def on_frame(message: Image) -> None:
        with probe.lock:
            frames[stamp_to_ns(message.header.stamp)] = np.array(rgb_frame(message).rgb)

    # Best effort as the sim publishes, but a deep history: a probe thread stalled by a loaded machine loses nothing.
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
    probe.node.create_subscription(JointState, topics.JOINT_STATES, on_joints, deep)
    probe.node.create_subscription(Image, task_camera_topic(config), on_frame, deep)
    reference = TrayGoalEnv(config, render_mode='rgb_array')
    with ExitStack() as stack:
        nodes = {name: stack.enter_context(running(command))
                 for name, command in node_commands(graph_parameters(config, real_time_factor=1.0,
                                                                     stepping=stepping)).items()}
        # Up: the goal node publishes scene latents, or with a stepped sim (whose frames only come once the env asks)
        # takes the camera beside the probe, which it does once its VAE is loaded; the reward node takes goals; the
        # probe hears the sim.
        scene_latents = []
        probe.node.create_subscription(Image, topics.SCENE_LATENT, scene_latents.append, SENSOR_QOS)
        probe.wait_for(lambda: (scene_latents if stepping == 'free'
                                else probe.node.count_subscribers(task_camera_topic(config)) >= 2)
                       and probe.node.count_subscribers(topics.GOAL_LATENT) > 0
                       and probe.node.count_publishers(topics.JOINT_STATES) > 0,
                       STARTUP_TIMEOUT_S, 'the sim, goal and reward nodes to start')
        env = RosGoalEnv(config, RosEnvConfig(timeout_s=TIMEOUT_S, stepping=stepping), domain_id=ros_domain_id,
                         observer=reference.observer)
        stack.callback(env.close)
        obs, info = env.reset(seed=0, options={'goal_state': GoalState((0.55, 0.05))})
        visited = [(info['stamp_ns'], obs['achieved_goal'], None)]
        actions = np.random.default_rng(0).uniform(-1, 1, (STEPS, 2))
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            visited.append((info['stamp_ns'], obs['achieved_goal'], reward))
        assert truncated and not terminated
        assert env.observation_space.contains(obs)
        stamps = [info['goal_stamp_ns']] + [stamp for stamp, _, _ in visited]
        probe.wait_for(lambda: all(stamp in joints and stamp in frames for stamp in stamps), STARTUP_TIMEOUT_S,
                       'the joint states and images of every frame the env was answered with')

        # The same states, in process.
        reference.reset(seed=0)
        pose_joints(reference, *joints[info['goal_stamp_ns']])
        np.testing.assert_allclose(reference.observe(), obs['desired_goal'], atol=TOLERANCE)
        for stamp, achieved, reward in visited:
            pose_joints(reference, *joints[stamp])
            latent = reference.observe()
            np.testing.assert_array_equal(reference.render(), frames[stamp])  # the very image the graph encoded
            np.testing.assert_allclose(latent, achieved, atol=TOLERANCE)
            if reward is not None:
                assert reward == pytest.approx(float(reference.compute_reward(latent, obs['desired_goal'], None)),
                                               abs=TOLERANCE)
                assert reward == pytest.approx(float(env.compute_reward(achieved, obs['desired_goal'], None)),
                                               abs=TOLERANCE)

        assert_a_stopped_reward_node_fails_the_next_step_in_one_line(env, nodes['reward'])
    reference.close()


def relay_on_system_clock(probe, message_type, source: str, target: str) -> None:
    """Republish source on target stamped with the system clock, as a robot's camera and arm drivers stamp theirs."""
    publisher = probe.node.create_publisher(message_type, target, SENSOR_QOS)

    def on_message(message) -> None:
        message.header.stamp = probe.node.get_clock().now().to_msg()
        publisher.publish(message)

    probe.node.create_subscription(message_type, source, on_message, SENSOR_QOS)


def test_ros_env_on_the_system_clock_steps_and_a_stopped_reward_stream_is_a_one_line_error(probe, ros_domain_id):
    """As on a robot (robot.launch.xml: use_sim_time false, no sim services): the sim stands in for the arm and camera,
    its joint states and task camera restamped with the system clock by relays in the driver's place, and its own
    clock and episodes heard by nobody. The env's steps complete on system-clock stamps; when the reward node stops,
    a step fails with one line naming /reward/latent_goal."""
    config = EnvConfig(mode='latent', goal_source='prior', episode_steps=STEPS)
    camera = '/' + task_camera_topic(config)
    commands = node_commands(graph_parameters(config, real_time_factor=1.0))
    commands['sim'] += ['-r', f'{camera}:=/driver{camera}', '-r', f'{topics.JOINT_STATES}:=/driver/joint_states',
                        '-r', f'{topics.EPISODES}:=/driver/episode']
    relay_on_system_clock(probe, Image, f'/driver{camera}', camera)
    relay_on_system_clock(probe, JointState, '/driver/joint_states', topics.JOINT_STATES)
    observer = make_observer(config)
    with ExitStack() as stack:
        nodes = {name: stack.enter_context(running(command)) for name, command in commands.items()}
        scene_latents = []
        probe.node.create_subscription(Image, topics.SCENE_LATENT, scene_latents.append, SENSOR_QOS)
        probe.wait_for(lambda: scene_latents and probe.node.count_subscribers(topics.GOAL_LATENT) > 0,
                       STARTUP_TIMEOUT_S, 'the goal and reward nodes to start on the relayed camera')
        started_ns = probe.node.get_clock().now().nanoseconds
        env = RosGoalEnv(config, RosEnvConfig(use_sim_time=False, sim_services=False, timeout_s=TIMEOUT_S),
                         domain_id=ros_domain_id, observer=observer)
        stack.callback(env.close)
        obs, info = env.reset(seed=0)
        stamps = [info['stamp_ns']]
        for action in np.random.default_rng(0).uniform(-1, 1, (STEPS, 2)):
            obs, reward, terminated, truncated, info = env.step(action)
            assert env.observation_space.contains(obs)
            assert reward == pytest.approx(float(env.compute_reward(obs['achieved_goal'], obs['desired_goal'], info)),
                                           abs=TOLERANCE)
            stamps.append(info['stamp_ns'])
        assert truncated and not terminated
        # System-clock stamps, each frame later than the one before (the sim's own would be seconds since its start).
        assert started_ns < stamps[0] and all(a < b for a, b in zip(stamps, stamps[1:]))
        assert_a_stopped_reward_node_fails_the_next_step_in_one_line(env, nodes['reward'])
