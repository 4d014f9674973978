"""The pure parts of RosGoalEnv: its config, how a step pairs scene latents with rewards, the action's target, and
the graph parameters that make the graph compute what the in-process env computes. No ROS node is created."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.rl.graph_parameters import graph_parameters, node_commands, parameter_text, task_camera_topic
from ssl_robot.rl.lockstep import (RosEnvConfig, StampedStream, at_rest, caught_up, check_sim_period,
                                   first_common_stamp, periods_allowed, reward_matches_goal, step_due_ns,
                                   stream_timeout_message)
from ssl_robot.rl.tasks import EnvConfig, action_target, workspace_bounds


def test_config_refuses_non_positive_and_infinite_values():
    for name in ('timeout_s', 'at_rest_joint_speed', 'goal_match_tolerance'):
        for value in (0.0, -1.0, float('inf'), float('nan')):
            with pytest.raises(ValueError, match=name):
                RosEnvConfig(**{name: value})
    with pytest.raises(ValueError, match='reward_kind'):
        RosEnvConfig(reward_kind='')
    with pytest.raises(ValueError, match="stepping must be one of free, on_request, got 'stepped'"):
        RosEnvConfig(stepping='stepped')
    for robot in ({'use_sim_time': False}, {'sim_services': False}):
        with pytest.raises(ValueError, match='needs use_sim_time and sim_services'):
            RosEnvConfig(stepping='on_request', **robot)
    assert RosEnvConfig(stepping='on_request').stepped and not RosEnvConfig().stepped


def test_a_stepped_wait_asks_for_another_period_once_every_watched_stream_has_caught_up():
    assert caught_up([300, 310], 300) and caught_up([], 300)
    assert not caught_up([300, 200], 300) and not caught_up([None, 300], 300)
    assert periods_allowed(10.0, 10.0) == 100 and periods_allowed(0.01, 10.0) == 1


def test_a_sim_period_must_be_one_control_period_to_the_tick_rounding():
    check_sim_period(0, 3 * 33_333_333, 10.0)
    with pytest.raises(ValueError, match=r'ran 200.0 ms .* control period is 100.0 ms: set .* ticks_per_step'):
        check_sim_period(0, 6 * 33_333_333, 10.0)


def test_stamped_stream_keeps_the_newest_up_to_capacity():
    stream = StampedStream(capacity=3)
    for stamp in (10, 20, 30, 40):
        stream.add(stamp, f'v{stamp}')
    assert stream.get(10) is None and stream.get(40) == 'v40'
    assert stream.stamps_from(25) == [30, 40]
    assert stream.newest_stamp() == 40
    stream.clear()
    assert stream.newest_stamp() is None
    with pytest.raises(ValueError):
        StampedStream(capacity=0)


def test_first_common_stamp_skips_frames_either_node_dropped():
    latents, rewards = StampedStream(), StampedStream()
    for stamp in (100, 133, 166, 200):
        latents.add(stamp, 'z')
    for stamp in (100, 166, 200):    # the reward node skipped 133
        rewards.add(stamp, 'r')
    assert first_common_stamp(latents, rewards, 120) == 166
    assert first_common_stamp(latents, rewards, 100) == 100
    assert first_common_stamp(latents, rewards, 201) is None


def test_a_step_is_due_one_control_period_later_with_tick_rounding():
    three_ticks_of_30_hz = 3 * 33_333_333
    assert step_due_ns(0, 10.0) <= three_ticks_of_30_hz < step_due_ns(0, 10.0) + 33_333_333
    assert step_due_ns(5_000, 10.0) - step_due_ns(0, 10.0) == 5_000


def test_reward_matches_goal_only_for_the_goal_it_was_scored_against():
    latent, goal, other_goal = np.array([0.5, -1.0]), np.array([1.5, 1.0]), np.array([-2.0, 0.0])
    distance = float(np.linalg.norm(latent - goal))
    assert reward_matches_goal(distance, latent, goal, 1e-4)
    assert reward_matches_goal(distance * (1 + 1e-6), latent, goal, 1e-4)
    assert not reward_matches_goal(distance, latent, other_goal, 1e-4)
    assert not reward_matches_goal(distance, latent, np.zeros(3), 1e-4)


def test_at_rest_needs_every_joint_slow_and_some_joints():
    assert at_rest(np.array([0.001, -0.001]), 0.02)
    assert not at_rest(np.array([0.001, 0.5]), 0.02)
    assert not at_rest(np.zeros(0), 0.02)


def test_timeout_message_is_one_line_naming_the_topic():
    line = stream_timeout_message('step 3', '/reward/latent_goal', 2_500_000_000, 2_100_000_000, 5.0)
    assert '\n' not in line and '/reward/latent_goal' in line and '2.500 s' in line and '2.100 s' in line
    assert 'nothing yet' in stream_timeout_message('reset', '/clock', None, None, 5.0)


def test_action_target_is_bounded_and_stays_in_the_workspace():
    low, high = workspace_bounds()
    centre = (low + high) / 2
    np.testing.assert_allclose(action_target(centre, np.array([0.5, -3.0]), 0.02), centre + [0.01, -0.02])
    np.testing.assert_allclose(action_target(high, np.array([1.0, 1.0]), 0.02), high)
    for bad in (np.array([np.nan, 0.0]), np.zeros(3)):
        with pytest.raises(ValueError, match='2 finite numbers'):
            action_target(centre, bad, 0.02)


def test_graph_parameters_give_both_nodes_the_envs_camera_and_vae():
    config = EnvConfig(mode='latent')
    parameters = graph_parameters(config, real_time_factor=0.0, seed=3)
    sim, goal, reward = parameters['sim'], parameters['goal'], parameters['reward']
    assert (sim['camera_rig'], sim['image_width'], sim['image_height']) == ('task', 48, 48)
    assert sim['num_objects'] == 0 and sim['real_time_factor'] == 0.0 and sim['mode'] == 'idle'
    assert sim['render_every'] == 3  # 30 Hz ticks, one frame per 10 Hz step
    assert sim['stepping'] == 'free' and sim['ticks_per_step'] == 3
    assert graph_parameters(config, stepping='on_request')['sim']['stepping'] == 'on_request'
    assert goal['camera'] == task_camera_topic(config) == 'cameras/task/image_raw'
    assert goal['vae_checkpoint'].endswith('rl_reach_vae.safetensors') and goal['vae_method'] == 'betavae'
    assert reward['kinds'] == ['latent_goal'] and reward['latent_goal_scale'] == 1.0
    with pytest.raises(ValueError, match='reach in latent mode'):
        graph_parameters(EnvConfig(mode='state'))


def test_node_commands_pass_every_parameter_as_ros_arguments():
    parameters = graph_parameters(EnvConfig(mode='latent'), real_time_factor=0.0)
    commands = node_commands(parameters, python='python')
    assert commands['sim'][:6] == ['python', '-m', 'ssl_robot.nodes.sim_node', '--ros-args', '-r', '__node:=sim']
    assert '-p' in commands['reward'] and 'kinds:=[latent_goal]' in commands['reward']
    assert 'publish_segmentation:=false' in commands['sim'] and 'real_time_factor:=0.0' in commands['sim']
    assert parameter_text(True) == 'true' and parameter_text(['a', 'b']) == '[a, b]'
