"""TrayWorld and its cameras: seeded spawning, coexisting physics clients, images and segmentation."""

import numpy as np
import pytest

from ssl_robot.sim.cameras import Camera, view_matrix
from ssl_robot.sim.config import load_sim_config
from ssl_robot.sim.world import TrayWorld


@pytest.fixture(scope='module')
def config():
    return load_sim_config(image_size=(80, 60))


@pytest.fixture(scope='module')
def world(config):
    world = TrayWorld(config)
    world.reset(3)
    yield world
    world.close()


def poses(world: TrayWorld) -> list:
    return [(s.name, s.position, s.orientation_xyzw) for s in world.object_states]


def test_same_seed_same_scene_in_coexisting_worlds(config, world):
    other = TrayWorld(config)
    try:
        assert other.client != world.client
        other.reset(3)
        assert [name for name, _, _ in poses(other)] == [name for name, _, _ in poses(world)]
        np.testing.assert_allclose([p for _, p, _ in poses(other)], [p for _, p, _ in poses(world)], atol=1e-9)
        other.reset(4)
        assert poses(other) != poses(world)
        moved = np.linalg.norm(np.subtract([p for _, p, _ in poses(other)], [p for _, p, _ in poses(world)]), axis=1)
        assert moved.max() > 0.01
    finally:
        other.close()


def test_reset_settles_objects_in_the_tray(config, world):
    assert len(world.object_states) == config.num_objects
    assert len({s.name for s in world.object_states}) == config.num_objects
    for state in world.object_states:
        assert state.in_tray and not state.lifted and not state.touching_gripper
        assert world.object_speed(state.index) < config.still_speed_mps
        assert any(state.name in pair for pair in world.contacts), f'{state.name} rests on nothing'
    assert all(a < b for a, b in world.contacts)


def test_cameras_render_configured_shapes_and_differ(config, world):
    frames = [Camera(world.client, spec).render(world.segmentation_lut) for spec in config.cameras]
    for frame, spec in zip(frames, config.cameras):
        assert frame.name == spec.name
        assert frame.rgb.shape == (60, 80, 3) and frame.rgb.dtype == np.uint8
        assert frame.segmentation.shape == (60, 80) and frame.segmentation.dtype == np.int32
        np.testing.assert_allclose(frame.K, spec.intrinsics())
        assert frame.rgb.std() > 10   # not a blank image
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            difference = np.abs(frames[i].rgb.astype(int) - frames[j].rgb.astype(int)).mean()
            assert difference > 10, f'{frames[i].name} and {frames[j].name} look alike'


def test_segmentation_holds_object_indices(config, world):
    frame = Camera(world.client, config.cameras[0]).render(world.segmentation_lut)
    labels = set(np.unique(frame.segmentation).tolist())
    assert -1 in labels
    assert labels - {-1}, 'no object visible'
    assert labels <= {-1, *range(config.num_objects)}


def test_intrinsics_and_view_project_an_object_onto_its_mask():
    """A lone convex object's centre, projected with K and the view matrix, lands on its own pixels."""
    config = load_sim_config(object_set='primitives', num_objects=1, image_size=(96, 72))
    world = TrayWorld(config)
    try:
        for seed in range(3):
            world.reset(seed)
            centre = np.append(world.object_center(0), 1.0)
            for spec in config.cameras:
                frame = Camera(world.client, spec).render(world.segmentation_lut)
                x, y, z, _ = view_matrix(spec) @ centre
                u, v, w = spec.intrinsics() @ np.array([x, -y, -z])   # OpenGL camera axes -> OpenCV
                column, row = int(round(u / w)), int(round(v / w))
                assert frame.segmentation[row, column] == 0, (seed, spec.name, row, column)
    finally:
        world.close()
