"""Scripted grasps through the runner: success at objects, failure on an empty spot, Grasp2Vec stamps."""

import numpy as np
import pytest

from ssl_robot.sim.config import load_sim_config
from ssl_robot.sim.runner import GraspEvent, SimRunner, TickOutput

MAX_TICKS = 600   # a whole attempt takes about 200 ticks


def run_grasp(runner: SimRunner, xy=None, render: bool = False) -> tuple[GraspEvent, dict[int, TickOutput]]:
    """Request one grasp (idle mode) and tick until its GraspEvent; returns it and the outputs by stamp."""
    runner.tick(render=render)   # the first tick spawns the tray
    runner.request_grasp(xy)
    outputs = {}
    for _ in range(MAX_TICKS):
        output = runner.tick(render=render)
        outputs[output.stamp_ns] = output
        events = [e for e in output.events if isinstance(e, GraspEvent)]
        if events:
            return events[0], outputs
    raise AssertionError(f'no GraspEvent within {MAX_TICKS} ticks')


@pytest.fixture(scope='module')
def rendered_success():
    """One successful attempt ticked with render=False: only its keyframe ticks get images."""
    config = load_sim_config(object_set='primitives', image_size=(64, 64))
    for seed in range(5):
        with SimRunner(config, seed=seed) as runner:
            event, outputs = run_grasp(runner, render=False)
        if event.success:
            return config, event, outputs
    pytest.fail('no successful grasp in 5 seeded attempts')


def test_grasps_at_random_objects_succeed_and_lift_them():
    config = load_sim_config()
    results = []
    for seed in range(4):
        with SimRunner(config, seed=seed) as runner:
            event, outputs = run_grasp(runner)
        results.append(event.success)
        if event.success:
            assert event.object_index is not None and event.object_name is not None
            heights = [o.objects[event.object_index].position[2] for o in outputs.values()
                       if o.gripper.held_object == event.object_index]
            assert max(heights) > config.tray_floor_z + config.lift_height_m - 0.1
            lifted = [o for o in outputs.values() if o.objects[event.object_index].lifted]
            assert lifted and all(o.gripper.held_object == event.object_index for o in lifted)
    assert sum(results) >= 2, results


def test_friction_grasps_without_assist_also_hold_objects():
    config = load_sim_config(object_set='primitives', grasp_assist=False)
    results = []
    for seed in range(4):
        with SimRunner(config, seed=seed) as runner:
            event, _ = run_grasp(runner)
        results.append(event.success)
    assert any(results), results


def test_grasp_at_an_empty_spot_fails_with_a_reason():
    config = load_sim_config(object_set='primitives', num_objects=2)
    with SimRunner(config, seed=1) as runner:
        runner.tick(render=False)
        world = runner.world
        centre = np.array(config.tray_position[:2])
        grid = [centre + np.array([dx, dy]) for dx in (-0.15, 0.0, 0.15) for dy in (-0.15, 0.0, 0.15)]
        empty = next(xy for xy in grid if all(np.linalg.norm(world.object_center(i)[:2] - xy) > 0.1
                                              for i in range(len(world.objects))))
        event, outputs = run_grasp(runner, tuple(empty))
    assert not event.success
    assert event.object_index is None and event.o_ns is None
    assert 'nothing between the fingers' in event.reason
    assert event.s_pre_ns < event.s_post_ns
    assert all(o.gripper.held_object is None for o in outputs.values())


def test_grasp_event_stamps_are_ordered(rendered_success):
    _, event, outputs = rendered_success
    assert event.s_pre_ns < event.o_ns < event.s_post_ns
    assert {event.s_pre_ns, event.o_ns, event.s_post_ns} <= set(outputs)


def test_keyframe_ticks_are_rendered_even_when_not_asked(rendered_success):
    config, event, outputs = rendered_success
    keyframes = {stamp: o.keyframes for stamp, o in outputs.items() if o.keyframes}
    assert keyframes == {event.s_pre_ns: ('s_pre',), event.o_ns: ('o',), event.s_post_ns: ('s_post',)}
    for stamp, output in outputs.items():
        rendered = stamp in keyframes
        assert (list(output.scene) == [c.name for c in config.cameras]) == rendered
        assert (output.object_camera is not None) == rendered


def test_scene_before_and_after_shows_the_object_removed(rendered_success):
    config, event, outputs = rendered_success
    before, after = outputs[event.s_pre_ns], outputs[event.s_post_ns]
    assert before.objects[event.object_index].in_tray and not after.objects[event.object_index].in_tray
    for name in before.scene:
        assert not (after.scene[name].segmentation == event.object_index).any()
    assert any((before.scene[name].segmentation == event.object_index).any() for name in before.scene)
    # The arm is out of the way in both (it is home, still, not touching anything).
    assert before.gripper.held_object is None and after.gripper.held_object is None


def test_object_camera_shows_the_held_object(rendered_success):
    config, event, outputs = rendered_success
    presented = outputs[event.o_ns]
    assert presented.gripper.held_object == event.object_index
    mask = presented.object_camera.segmentation == event.object_index
    assert mask.sum() > 40
    # Before the grasp the object camera sees nothing but its plain background.
    empty = outputs[event.s_pre_ns].object_camera
    assert (empty.segmentation == -1).all()
    assert (empty.rgb == empty.rgb[0, 0]).all()
    # Around the held object that background stays plain: the pixels differ only where something is.
    background = presented.object_camera.rgb == empty.rgb[0, 0]
    assert background.all(axis=2)[~mask].mean() > 0.5
    assert not background.all(axis=2)[mask].any()
