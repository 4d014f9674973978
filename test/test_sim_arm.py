"""The arm: IK control of the tool centre point, reach checks and the gripper."""

import math

import numpy as np
import pytest

from ssl_robot.sim.arm import quaternion_angle
from ssl_robot.sim.behaviours import top_down
from ssl_robot.sim.config import load_sim_config
from ssl_robot.sim.world import TrayWorld


@pytest.fixture(scope='module')
def world():
    world = TrayWorld(load_sim_config(num_objects=0))
    world.reset(0)
    yield world
    world.close()


def run(world: TrayWorld, ticks: int, until=lambda: False) -> int:
    for tick in range(ticks):
        world.arm.advance()
        world.step_physics()
        world.update()
        if until():
            return tick
    return ticks


def test_reset_puts_the_tcp_at_home(world):
    position, orientation = world.arm.tcp_pose()
    home = world.config.home
    assert np.linalg.norm(position - home.position) < 0.01
    assert quaternion_angle(orientation, np.array(home.orientation_xyzw())) < 0.05


@pytest.mark.parametrize('target, yaw', [((0.6, 0.0, 0.2), 0.0), ((0.5, 0.12, 0.1), 0.7), ((0.72, -0.1, 0.3), -1.2)])
def test_ik_reaches_a_target(world, target, yaw):
    orientation = np.array(top_down(yaw))
    world.arm.set_goal(target, orientation)
    run(world, 120, until=world.arm.at_goal)
    position, reached = world.arm.tcp_pose()
    assert np.linalg.norm(position - target) < 0.01
    assert quaternion_angle(reached, orientation) < 0.05


def test_moves_are_speed_limited(world):
    world.arm.set_goal((0.6, 0.0, 0.3), top_down(0.0))
    run(world, 120, until=world.arm.at_goal)
    world.arm.set_goal((0.6, 0.0, 0.1), top_down(0.0))
    start = world.arm.tcp_pose()[0]
    run(world, 3)
    travelled = np.linalg.norm(world.arm.tcp_pose()[0] - start)
    assert 0.0 < travelled <= 3 * world.config.max_tcp_speed_mps / world.config.tick_rate_hz + 0.005


def test_reach_problems_are_explained(world):
    assert world.arm.reach_problem((0.6, 0.0, 0.2), top_down(0.0)) is None
    assert 'out of reach' in world.arm.reach_problem((1.3, 0.0, 0.2), top_down(0.0))
    assert 'too close' in world.arm.reach_problem((0.05, 0.0, 0.3), top_down(0.0))


def test_gripper_opens_and_closes(world):
    world.arm.set_gripper(closed=False)
    run(world, 15)
    opened = world.arm.opening_m()
    assert world.gripper_state().grip_force_n == 0.0
    world.arm.set_gripper(closed=True)
    run(world, 1)
    closing = world.gripper_state()
    assert closing.closed_cmd and closing.opening_rate_mps < -0.01
    assert closing.grip_force_n == world.config.gripper_force_n
    run(world, 14)
    closed = world.arm.opening_m()
    assert opened - closed > 0.05
    world.arm.set_gripper(closed=False)
    run(world, 15)
    assert math.isclose(world.arm.opening_m(), opened, abs_tol=0.005)


def test_joint_states_cover_arm_and_gripper(world):
    joints = world.arm.joint_states()
    assert joints.names[:7] == [f'J{i}' for i in range(7)]
    assert len(joints.names) == len(joints.positions) == len(joints.velocities) == len(joints.efforts) == 12
    assert np.all(np.isfinite(joints.positions))
