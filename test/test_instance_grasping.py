"""Instance grasping evaluation (ssl_robot.rl.instance_grasping): pixels to tray points and back, both baselines on
two held-out trays, and the grasp-eval command's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot import cli
from ssl_robot.inference.model_holder import LoadedModel, default_checkpoint
from ssl_robot.rl.evaluation import EVAL_SEED
from ssl_robot.rl.instance_grasping import (GraspEvaluation, HeatmapArgmax, evaluate, format_table, indiscriminate)
from ssl_robot.sim.cameras import pixel_on_plane, project_to_pixel
from ssl_robot.sim.config import load_sim_config

SMALL = dict(image_size=(64, 64), num_objects=3)


@pytest.fixture(scope='module')
def config():
    return load_sim_config(**SMALL)


def test_pixel_on_plane_inverts_the_projection_of_tray_points(config):
    rng = np.random.default_rng(0)
    for spec in config.cameras:
        for _ in range(5):
            point = np.array([0.6, 0.0, config.tray_floor_z]) + rng.uniform([-0.15, -0.15, 0.0], [0.15, 0.15, 0.1])
            pixel = project_to_pixel(spec, point)
            assert 0 <= pixel[0] < spec.width and 0 <= pixel[1] < spec.height, (spec.name, pixel)
            np.testing.assert_allclose(pixel_on_plane(spec, pixel, point[2]), point, atol=1e-5)


def test_the_image_centre_looks_at_the_camera_target(config):
    for spec in config.cameras:
        centre = ((spec.width - 1) / 2, (spec.height - 1) / 2)
        np.testing.assert_allclose(pixel_on_plane(spec, centre, spec.target[2]), spec.target, atol=1e-5)
        np.testing.assert_allclose(project_to_pixel(spec, spec.target), centre, atol=1e-3)


def test_points_and_planes_a_camera_cannot_see_are_refused(config):
    spec = config.cameras[0]
    with pytest.raises(ValueError, match='z = 5.0 m'):
        pixel_on_plane(spec, (10.0, 10.0), 5.0)   # the plane lies above the camera
    behind = 2 * np.asarray(spec.eye) - np.asarray(spec.target)
    with pytest.raises(ValueError, match='behind camera'):
        project_to_pixel(spec, behind)


def well_formed(evaluation: GraspEvaluation, config, trials: int) -> None:
    assert len(evaluation.trials) == trials
    half = config.tray_inner_half_extent_m
    for trial in evaluation.trials:
        assert trial.seed >= EVAL_SEED
        assert trial.any_success or not trial.goal_success
        assert (trial.grasped_name is not None) == trial.any_success
        assert trial.goal_success == (trial.grasped_name == trial.goal_name and trial.any_success)
        assert all(abs(trial.xy[k] - config.tray_position[k]) <= half for k in (0, 1))
        assert trial.goal_distance_m >= 0 and trial.reason
    for which in ('goal', 'any'):
        hits, count, (low, high) = evaluation.rate(which)
        assert count == trials and 0 <= low <= hits / count <= high <= 1


def test_both_baselines_run_two_trials_and_repeat_with_the_seed(config):
    heatmap = HeatmapArgmax(LoadedModel(default_checkpoint('grasp2vec'), 'grasp2vec', device='cpu'))
    runs = [evaluate(config, 'indiscriminate', indiscriminate, 2, EVAL_SEED, 'front_left'),
            evaluate(config, 'heatmap_argmax', heatmap, 2, EVAL_SEED, 'front_left')]
    for evaluation in runs:
        well_formed(evaluation, config, 2)
    # The same trays, hence the same goals, for every policy.
    assert [t.goal_name for t in runs[0].trials] == [t.goal_name for t in runs[1].trials]
    assert evaluate(config, 'indiscriminate', indiscriminate, 2, EVAL_SEED, 'front_left') == runs[0]
    table = format_table(runs).splitlines()
    assert len(table) == 4 and table[2].startswith('| indiscriminate |') and table[3].startswith('| heatmap_argmax |')


def test_bad_evaluation_inputs_are_refused(config):
    with pytest.raises(ValueError, match="'top'"):
        evaluate(config, 'indiscriminate', indiscriminate, 1, EVAL_SEED, 'top')
    with pytest.raises(ValueError, match='got 0'):
        evaluate(config, 'indiscriminate', indiscriminate, 0, EVAL_SEED, 'front_left')
    with pytest.raises(ValueError, match="'most'"):
        GraspEvaluation('indiscriminate', 'random_urdfs', (), ()).rate('most')


@pytest.mark.parametrize('arguments, named', [
    (['--policy', 'oracle'], "'oracle'"),
    (['--trials', '0'], 'got 0'),
    (['--seed', '7'], 'got 7'),
    (['--object-set', 'nope'], "'nope'"),
    (['--camera', 'top'], "'top'"),
])
def test_grasp_eval_command_refuses_bad_input_in_one_line(arguments, named, capsys):
    assert cli.main(['rl', 'grasp-eval', *arguments]) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and named in error, error
