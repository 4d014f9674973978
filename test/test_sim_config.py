"""Loading and validating the simulation config (sim/scene.yaml, sim/rigs/, sim/objects/)."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssl_robot.resources import share_path
from ssl_robot.sim.config import CameraSpec, load_sim_config


def write_scene(tmp_path: Path, **changes) -> Path:
    scene = yaml.safe_load(share_path('sim', 'scene.yaml').read_text())
    scene.update(changes)
    path = tmp_path / 'scene.yaml'
    path.write_text(yaml.safe_dump(scene))
    return path


def test_defaults_load():
    config = load_sim_config()
    assert config.object_set == 'random_urdfs'
    assert config.rig == 'default'
    assert len(config.cameras) == 3
    assert all((c.width, c.height) == (128, 128) for c in config.cameras)
    assert config.object_camera.name not in {c.name for c in config.cameras}
    assert config.physics_steps_per_tick == 8
    assert 0 < config.num_objects <= len(config.objects)
    assert config.grasp_assist is True


def test_arguments_override_the_files():
    config = load_sim_config(object_set='primitives', num_objects=3, image_size=(96, 64), grasp_assist=False,
                             tick_rate_hz=15.0)
    assert config.object_set == 'primitives' and config.objects[0].shape is not None
    assert config.num_objects == 3
    assert {(c.width, c.height) for c in (*config.cameras, config.object_camera)} == {(96, 64)}
    assert config.grasp_assist is False
    assert config.physics_steps_per_tick == 16


def test_unknown_scene_key_names_key_and_file(tmp_path):
    path = write_scene(tmp_path, tray_colour=[1, 0, 0])
    with pytest.raises(ValueError, match=r"unknown key 'tray_colour'") as error:
        load_sim_config(path)
    assert str(path) in str(error.value)


def test_unknown_nested_key_is_an_error(tmp_path):
    path = write_scene(tmp_path, home={'position': [0.15, -0.45, 0.55], 'yaw': 0.0})
    with pytest.raises(ValueError, match=r"home.*unknown key 'yaw'"):
        load_sim_config(path)


def test_missing_keys_are_named(tmp_path):
    scene = yaml.safe_load(share_path('sim', 'scene.yaml').read_text())
    del scene['home'], scene['tray_position']
    path = tmp_path / 'scene.yaml'
    path.write_text(yaml.safe_dump(scene))
    with pytest.raises(ValueError, match=r'scene.yaml: missing keys tray_position, home'):
        load_sim_config(path)
    rig = tmp_path / 'rig.yaml'
    rig.write_text(yaml.safe_dump({'cameras': [{'name': 'left', 'width': 64, 'height': 64, 'fov_deg': 45.0}]}))
    with pytest.raises(ValueError, match=r'rig.yaml: cameras\[0\]: missing keys eye, target'):
        load_sim_config(rig=str(rig))


def test_unknown_override_is_an_error():
    with pytest.raises(TypeError, match=r"unknown override 'grasp_asist'"):
        load_sim_config(grasp_asist=False)


def test_unknown_object_set_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown object set 'marbles'.*primitives.*random_urdfs"):
        load_sim_config(object_set='marbles')


def test_unknown_rig_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown camera rig 'surround'.*default"):
        load_sim_config(rig='surround')


@pytest.mark.parametrize('size', [(0, 128), (128, -4)])
def test_non_positive_image_size_is_an_error(size):
    with pytest.raises(ValueError, match=r"camera '\w+': image size must be positive"):
        load_sim_config(image_size=size)


def test_zero_size_rig_camera_names_the_camera(tmp_path):
    rig = tmp_path / 'rig.yaml'
    rig.write_text(yaml.safe_dump({'cameras': [
        {'name': 'left', 'width': 64, 'height': 64, 'fov_deg': 45.0, 'eye': [1, 1, 1], 'target': [0, 0, 0]},
        {'name': 'right', 'width': 0, 'height': 64, 'fov_deg': 45.0, 'eye': [1, -1, 1], 'target': [0, 0, 0]}]}))
    with pytest.raises(ValueError, match=r"camera 'right': image size must be positive, got width=0"):
        load_sim_config(rig=str(rig))


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'scene.yaml'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_sim_config(missing)


def test_bad_values_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='whole multiple of tick_rate_hz'):
        load_sim_config(tick_rate_hz=70.0)
    with pytest.raises(ValueError, match=r'num_objects must be in \[0, 12\]'):
        load_sim_config(object_set='primitives', num_objects=13)
    with pytest.raises(ValueError, match='expected true or false'):
        load_sim_config(write_scene(tmp_path, grasp_assist='yes'))
    with pytest.raises(ValueError, match='dropoff position .* outside the workspace'):
        load_sim_config(dropoff={'position': [3.0, 0.0, 0.3]})


def test_camera_spec_validation():
    good = dict(name='cam', width=64, height=48, fov_deg=45.0, eye=(1.0, 0.0, 1.0), target=(0.0, 0.0, 0.0))
    CameraSpec(**good)
    with pytest.raises(ValueError, match="camera 'cam': fov_deg"):
        CameraSpec(**{**good, 'fov_deg': 180.0})
    with pytest.raises(ValueError, match="camera 'cam': eye and target coincide"):
        CameraSpec(**{**good, 'target': good['eye']})
    with pytest.raises(ValueError, match="camera 'cam': up .* parallel"):
        CameraSpec(**{**good, 'eye': (0.0, 0.0, 1.0), 'up': (0.0, 0.0, 1.0)})
    with pytest.raises(ValueError, match="camera 'cam': eye must be 3 finite numbers"):
        CameraSpec(**{**good, 'eye': (math.nan, 0.0, 1.0)})


def test_intrinsics_follow_fov_and_size():
    spec = CameraSpec(name='cam', width=160, height=120, fov_deg=90.0, eye=(1.0, 0.0, 1.0), target=(0.0, 0.0, 0.0))
    K = spec.intrinsics()
    # A 90 degree vertical field of view spans the image height at unit depth: f = (H / 2) / tan(45 deg).
    np.testing.assert_allclose(K, [[60.0, 0.0, 79.5], [0.0, 60.0, 59.5], [0.0, 0.0, 1.0]])
