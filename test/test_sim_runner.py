"""SimRunner: ticks and stamps, command validation, resets and the scripted modes."""

import math

import numpy as np
import pytest

from ssl_robot.sim.behaviours import MOTION_BEHAVIOURS, top_down
from ssl_robot.sim.cameras import camera_pose
from ssl_robot.sim.config import CameraRandomization, load_sim_config
from ssl_robot.sim.runner import EpisodeEvent, SimRunner, check_stepping, episode_seed


@pytest.fixture(scope='module')
def config():
    return load_sim_config(object_set='primitives', num_objects=3, image_size=(48, 40))


@pytest.fixture
def idle(config):
    with SimRunner(config, mode='idle', seed=5) as runner:
        yield runner


def test_ticks_stamp_render_and_report(config, idle):
    first = idle.tick()
    assert (first.tick, first.stamp_ns) == (1, idle.tick_period_ns)
    assert idle.tick_period_ns == 33_333_333
    assert list(first.scene) == [c.name for c in config.cameras]
    assert first.scene['front_left'].rgb.shape == (40, 48, 3)
    assert first.object_camera.name == 'object'
    assert [type(e) for e in first.events] == [EpisodeEvent]
    assert first.events[0] == EpisodeEvent(episode=0, seed=episode_seed(5, 0), mode='idle',
                                           stamp_ns=first.stamp_ns, behaviour='idle', rig='default',
                                           cameras={c.name: camera_pose(c) for c in config.cameras})
    assert len(first.objects) == 3 and first.gripper.held_object is None and not first.gripper.closed_cmd
    second = idle.tick(render=False)
    assert second.stamp_ns == 2 * idle.tick_period_ns
    assert second.scene == {} and second.object_camera is None and second.events == []


def test_a_stepped_period_runs_its_ticks_and_renders_only_the_last(idle):
    period = idle.advance(3)
    assert [tick.stamp_ns for tick in period] == [k * idle.tick_period_ns for k in (1, 2, 3)]
    assert [bool(tick.scene) for tick in period] == [False, False, True]
    assert period[-1].object_camera is not None and period[0].object_camera is None
    assert [tick.tick for tick in idle.advance(1)] == [4]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match='ticks'):
            idle.advance(bad)


def test_stepping_takes_free_or_on_request_and_a_positive_tick_count():
    check_stepping('free', 1)
    check_stepping('on_request', 3)
    with pytest.raises(ValueError, match="stepping must be one of free, on_request, got 'lockstep'"):
        check_stepping('lockstep', 3)
    with pytest.raises(ValueError, match='ticks_per_step must be an integer >= 1, got 0'):
        check_stepping('on_request', 0)


def test_external_commands_move_arm_and_gripper(idle):
    idle.tick(render=False)
    target = (0.6, 0.05, 0.25)
    idle.command_ee_target(target, top_down(0.3))
    idle.command_gripper(True)
    for _ in range(90):
        output = idle.tick(render=False)
    position, _ = idle.world.arm.tcp_pose()
    assert np.linalg.norm(position - target) < 0.01
    assert output.gripper.closed_cmd and output.gripper.opening_m < 0.06


@pytest.mark.parametrize('position, orientation, message', [
    ((0.6, math.nan, 0.3), (0, 0, 0, 1), 'must be finite'),
    ((0.6, 0.0), (0, 0, 0, 1), 'must be 3 numbers'),
    ((0.6, 0.0, 0.3), (0, 0, 0, 2), 'unit quaternion'),
    ((0.6, 0.0, 0.3), (0, 'a', 0, 1), 'must be 4 numbers'),
    ((0.6, 0.0, 1.5), (0, 0, 0, 1), 'outside the workspace'),
    ((0.95, 0.7, 0.05), (1, 0, 0, 0), 'out of reach'),
])
def test_bad_ee_targets_raise_and_change_nothing(idle, position, orientation, message):
    idle.tick(render=False)
    goal = idle.world.arm.goal_position.copy()
    with pytest.raises(ValueError, match=message):
        idle.command_ee_target(position, orientation)
    np.testing.assert_array_equal(idle.world.arm.goal_position, goal)
    assert idle.tick(render=False).tick == 2


def test_bad_requests_raise(idle):
    idle.tick(render=False)
    with pytest.raises(ValueError, match='closed must be a bool'):
        idle.command_gripper('yes')
    with pytest.raises(ValueError, match='outside the tray'):
        idle.request_grasp((2.0, 0.0))
    with pytest.raises(ValueError, match="out of the arm's reach"):
        idle.request_grasp((0.81, 0.0))   # the far edge of the tray
    with pytest.raises(ValueError, match='reset seed must be an integer >= 0'):
        idle.request_reset(-1)
    idle.request_grasp(None)
    with pytest.raises(RuntimeError, match='scripted grasp'):
        idle.request_grasp(None)
    with pytest.raises(RuntimeError, match='scripted grasp'):
        idle.command_ee_target((0.6, 0.0, 0.3), top_down(0.0))
    with pytest.raises(RuntimeError, match='scripted grasp'):
        idle.command_gripper(True)
    assert idle.tick(render=False).tick == 2


def test_scripted_modes_refuse_arm_commands(config):
    with SimRunner(config, mode='grasp') as runner:
        runner.tick(render=False)
        with pytest.raises(RuntimeError, match="not accepted in 'grasp' mode"):
            runner.command_ee_target((0.6, 0.0, 0.3), top_down(0.0))
        with pytest.raises(RuntimeError, match="not accepted in 'grasp' mode"):
            runner.request_grasp(None)
        runner.tick(render=False)


def test_bad_constructor_arguments(config):
    with pytest.raises(ValueError, match="unknown mode 'dance'"):
        SimRunner(config, mode='dance')
    with pytest.raises(ValueError, match='attempts_per_episode must be an integer >= 1'):
        SimRunner(config, mode='grasp', attempts_per_episode=0)
    with pytest.raises(ValueError, match='seed must be an integer >= 0'):
        SimRunner(config, seed=1.5)


def test_requested_reset_respawns_with_the_seed(config, idle):
    first = idle.tick(render=False)
    idle.request_reset(seed=11)
    output = idle.tick(render=False)
    assert output.events == [EpisodeEvent(episode=1, seed=11, mode='idle', stamp_ns=output.stamp_ns,
                                          behaviour='idle', rig='default',
                                          cameras={c.name: camera_pose(c) for c in config.cameras})]
    assert idle.episodes_completed == 1
    assert [o.name for o in output.objects] != [o.name for o in first.objects] or \
        [o.position for o in output.objects] != [o.position for o in first.objects]
    with SimRunner(config, mode='idle') as other:
        other.tick(render=False)
        other.request_reset(seed=11)
        again = other.tick(render=False)
    assert [(o.name, o.position) for o in again.objects] == [(o.name, o.position) for o in output.objects]


def test_motion_mode_completes_episodes_with_distinct_seeds(config):
    episodes = []
    held_while_pushing = []
    with SimRunner(config, mode='motion', seed=2) as runner:
        for _ in range(3000):
            output = runner.tick(render=False)
            episodes += [e for e in output.events if isinstance(e, EpisodeEvent)]
            if episodes[-1].behaviour == 'push':
                held_while_pushing.append(output.gripper.held_object)
            if runner.episodes_completed == 3:
                break
    assert runner.episodes_completed == 3
    assert [e.episode for e in episodes] == [0, 1, 2]
    assert len({e.seed for e in episodes}) == 3
    assert [e.seed for e in episodes] == [episode_seed(2, k) for k in range(3)]
    assert all(e.mode == 'motion' and e.behaviour in MOTION_BEHAVIOURS for e in episodes)
    assert [e.stamp_ns for e in episodes] == sorted(e.stamp_ns for e in episodes)
    # Seed 2 happens to draw a push; the closed gripper sweeps the object without picking it up.
    assert held_while_pushing and set(held_while_pushing) == {None}


def test_motion_episodes_end_where_the_behaviour_ends_and_start_home(config):
    """No scripted return: the last tick of an episode has the arm away from home, the reset brings it back."""
    home = np.array(config.home.position)
    one_tick_of_motion = config.max_tcp_speed_mps / config.tick_rate_hz   # the script moves on the first tick
    distance_from_home = []
    with SimRunner(config, mode='motion', seed=2) as runner:
        while runner.episodes_completed < 3:
            output = runner.tick(render=False)
            if any(isinstance(e, EpisodeEvent) for e in output.events):
                distance_from_home.append([])
            distance_from_home[-1].append(float(np.linalg.norm(runner.world.arm.tcp_pose()[0] - home)))
    for episode in distance_from_home[:3]:
        assert episode[0] <= one_tick_of_motion + 0.005
        assert episode[-1] > 0.2


def test_closed_runner_refuses_to_tick(config):
    runner = SimRunner(config)
    runner.close()
    runner.close()
    with pytest.raises(RuntimeError, match='closed'):
        runner.tick()


# --- camera randomization -----------------------------------------------------------------------------------

BOUNDS = CameraRandomization(position_m=0.05, aim_deg=3.0, fov_deg=2.0)


def episode_cameras(config, seed: int, episodes: int) -> list[dict]:
    """The camera poses each of the first episodes of an idle runner recorded, and its first tick's images."""
    poses = []
    with SimRunner(config, mode='idle', seed=seed) as runner:
        for episode in range(episodes):
            if episode:
                runner.request_reset()
            output = runner.tick()
            (event,) = output.events
            poses.append((event.cameras, output.scene['front_left'].rgb, output.scene['front_left'].K))
    return poses


def test_randomized_cameras_move_within_their_bounds_every_episode_and_repeat_by_seed(config):
    randomized = load_sim_config(object_set='primitives', num_objects=3, image_size=(48, 40),
                                 camera_randomization=BOUNDS)
    runs = episode_cameras(randomized, seed=3, episodes=3)
    rig = {camera.name: camera for camera in config.cameras}
    for cameras, _, _ in runs:
        assert list(cameras) == list(rig)
        for name, pose in cameras.items():
            spec = rig[name]
            assert 0 < np.linalg.norm(np.subtract(pose['eye'], spec.eye)) <= BOUNDS.position_m + 1e-9
            assert 0 < abs(pose['fov_deg'] - spec.fov_deg) <= BOUNDS.fov_deg
            # The direction turned by at most aim_deg from the one towards the rig's target.
            towards, view = np.subtract(spec.target, pose['eye']), np.subtract(pose['target'], pose['eye'])
            cosine = towards @ view / np.linalg.norm(towards) / np.linalg.norm(view)
            assert math.degrees(math.acos(min(1.0, cosine))) <= BOUNDS.aim_deg + 1e-6
    assert runs[0][0] != runs[1][0] != runs[2][0]
    # The image and the intrinsics follow the drawn pose.
    assert not np.array_equal(runs[0][1], runs[1][1]) and not np.array_equal(runs[0][2], runs[1][2])
    again = episode_cameras(randomized, seed=3, episodes=3)
    assert [cameras for cameras, _, _ in again] == [cameras for cameras, _, _ in runs]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(again, runs))


def test_without_randomization_every_episode_records_the_rigs_poses(config):
    for cameras, _, _ in episode_cameras(config, seed=3, episodes=2):
        assert cameras == {camera.name: camera_pose(camera) for camera in config.cameras}


@pytest.mark.parametrize('values, message', [
    ({'position_m': -0.1}, 'position_m must be a finite number >= 0'),
    ({'fov_deg': float('nan')}, 'fov_deg must be a finite number >= 0'),
    ({'aim_deg': 90.0}, 'aim_deg must be below 90'),
])
def test_camera_randomization_refuses_bad_bounds(values, message):
    with pytest.raises(ValueError, match=message):
        CameraRandomization(**values)
