"""Learning instance grasping (ssl_robot.models.grasp_q, ssl_robot.rl.grasp_{collection,learning,policy}): the
critic's loss against a NumPy loop, that it learns a rule it is shown, the relabelled rows' invariants, policy files
and their refusals, the command's one-line errors, and a tiny collect-train-evaluate run in the sim."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_robot import cli
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.models.grasp_q import GraspQConfig, GraspQNetwork
from ssl_robot.rl.evaluation import EVAL_SEED
from ssl_robot.rl.grasp_collection import (CollectionSettings, GraspAttempts, cell_centre_pixel, collect,
                                           pixel_cell, view_of)
from ssl_robot.rl.grasp_learning import GraspTrainConfig, load_grasp_config, relabelled_rows
from ssl_robot.rl.grasp_policy import SHIPPED_POLICY, load_grasp_policy, save_grasp_policy
from ssl_robot.rl.instance_grasping import GraspView, evaluate
from ssl_robot.sim.config import load_sim_config
from ssl_robot.typed_config import ConfigError

TINY = GraspQConfig(image_size=16, trunk_widths=(4, 8), head_width=8, goal_dim=6)


def tiny_batch(rows: int, rng: np.random.Generator, config: GraspQConfig = TINY) -> dict[str, torch.Tensor]:
    side = config.map_size
    return {'scene': torch.rand(rows, 3, config.image_size, config.image_size),
            'similarity': torch.rand(rows, 3, 3) * 2 - 1,
            'goal': torch.nn.functional.normalize(torch.randn(rows, config.goal_dim), dim=-1),
            'cell': torch.from_numpy(rng.integers(0, side, (rows, 2))),
            'target': torch.from_numpy(rng.uniform(0, 1, rows)).float()}


def test_the_critic_loss_is_binary_cross_entropy_at_each_rows_grasp_cell():
    rng = np.random.default_rng(0)
    network = GraspQNetwork(TINY)
    batch = tiny_batch(5, rng)
    loss, metrics = network(batch)
    logits = network.q_logits(batch['scene'], batch['similarity'], batch['goal']).detach().numpy()
    expected = 0.0
    for row in range(5):
        logit = float(logits[row, batch['cell'][row, 0], batch['cell'][row, 1]])
        target = float(batch['target'][row])
        probability = 1 / (1 + np.exp(-logit))
        expected -= target * np.log(probability) + (1 - target) * np.log(1 - probability)
    assert loss.item() == pytest.approx(expected / 5, rel=1e-5)
    assert metrics['loss'] == pytest.approx(loss.item())


def test_the_critic_learns_to_grasp_where_the_goal_cue_is_high():
    """A rule a grasp critic must be able to read: reward 1 exactly where the goal's similarity cue is positive."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    network = GraspQNetwork(TINY)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)

    def labelled(rows: int) -> dict[str, torch.Tensor]:
        batch = tiny_batch(rows, rng)
        cue = torch.nn.functional.interpolate(batch['similarity'][:, None], size=(TINY.map_size,) * 2,
                                              mode='bilinear', align_corners=False)[:, 0]
        at_cell = cue[torch.arange(rows), batch['cell'][:, 0], batch['cell'][:, 1]]
        return {**batch, 'target': (at_cell > 0).float()}

    for _ in range(400):
        loss, _ = network(labelled(64))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = labelled(500)
    logits = network.q_logits(test['scene'], test['similarity'], test['goal']).detach()
    chosen = logits[torch.arange(500), test['cell'][:, 0], test['cell'][:, 1]]
    assert ((chosen > 0).float() == test['target']).float().mean() > 0.9


def test_bad_critic_configs_and_batches_are_named():
    with pytest.raises(ValueError, match='multiple of 4'):
        GraspQConfig(image_size=30, trunk_widths=(4, 8))
    with pytest.raises(ValueError, match='trunk_widths'):
        GraspQConfig(trunk_widths=())
    with pytest.raises(ValueError, match=r'goal must be \(2, 6\)'):
        GraspQNetwork(TINY).q_logits(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 3), torch.rand(2, 5))


def test_cells_and_pixels_map_back_and_forth():
    cells = np.array([[0, 0], [3, 7], [31, 31]])
    np.testing.assert_array_equal(pixel_cell(cell_centre_pixel(cells, 4), 4, 32), cells)
    np.testing.assert_array_equal(pixel_cell(np.array([[-3.0, 500.0]]), 4, 32), [[31, 0]])


def synthetic_attempts(rng: np.random.Generator, trays: int = 6, per_tray: int = 8) -> tuple[GraspAttempts, np.ndarray]:
    count = trays * per_tray
    tray = np.repeat(np.arange(trays), per_tray)
    success = rng.random(count) < 0.6
    index = np.where(success, rng.integers(0, 3, count), -1)
    # Object names repeat across trays (the same URDF in two trays), as in the sim's object sets.
    name = np.where(success, np.char.add('object_', ((tray + index) % 5).astype(str)), '')
    settings = CollectionSettings('random_urdfs', 'front_left', 0, trays, per_tray, 0.5, 0.01)
    attempts = GraspAttempts(settings, {}, np.zeros((trays, 8, 8, 3), np.uint8), np.ones((2, 2), bool), tray,
                             rng.uniform(0.4, 0.8, (count, 2)), rng.uniform(0, 8, (count, 2)), success, name, index,
                             np.zeros((count, 4, 4, 3), np.uint8))
    goals = np.abs(rng.normal(size=(count, 6)))
    return attempts, goals / np.linalg.norm(goals, axis=1, keepdims=True)


def test_collection_reports_each_tray_as_it_is_done_and_numbers_the_trays_in_order():
    settings = CollectionSettings(object_set='random_urdfs', camera='front_left', first_seed=300, trays=3,
                                  attempts_per_tray=1, object_aim_fraction=0.7, aim_noise_m=0.015)
    progress = []
    attempts = collect(settings, cell_size=4, workers=2, progress=progress.append)
    assert progress == [1, 1, 1]
    assert attempts.tray.tolist() == [0, 1, 2] and len(attempts.scenes) == 3


def test_relabelled_rows_keep_posthoc_and_auxiliary_goals_apart():
    rng = np.random.default_rng(2)
    attempts, goals = synthetic_attempts(rng)
    rows = relabelled_rows(attempts, goals, GraspTrainConfig(cross_tray_goals=2, trays=6), rng)
    same_object = lambda a, b: (attempts.tray[a] == attempts.tray[b]) & (attempts.object_index[a] ==
                                                                          attempts.object_index[b])
    goal_source = np.array([np.flatnonzero((goals == g).all(axis=1))[0] for g in rows.goal])
    posthoc = rows.kind == 0
    assert posthoc.sum() == attempts.success.sum() and (rows.target[posthoc] == 1).all()
    assert same_object(rows.attempt[posthoc], goal_source[posthoc]).all()
    auxiliary = ~posthoc
    assert not (attempts.object_name[rows.attempt[auxiliary]] == attempts.object_name[goal_source[auxiliary]]).any()
    within, across = rows.kind == 1, rows.kind == 2
    assert (attempts.tray[rows.attempt[within]] == attempts.tray[goal_source[within]]).all()
    assert (attempts.tray[rows.attempt[across]] != attempts.tray[goal_source[across]]).all()
    failed = ~attempts.success[rows.attempt]
    assert failed.any() and (rows.target[failed] == 0).all()
    rewarded = auxiliary & ~failed
    np.testing.assert_allclose(rows.target[rewarded],
                               np.sum(goals[rows.attempt[rewarded]] * rows.goal[rewarded], axis=1))


def test_grasp_configs_refuse_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / 'grasp.yaml'
    path.write_text('trays: 5\ntray: 3\n')
    with pytest.raises(ConfigError, match="unknown key 'tray'"):
        load_grasp_config(path)
    with pytest.raises(ConfigError, match='--set trays=0'):
        load_grasp_config(None, ['trays=0'])
    with pytest.raises(ConfigError, match=str(EVAL_SEED)):
        load_grasp_config(None, ['seed=20'])


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    """A tiny real run: 2 trays of 2 attempts in the sim, 5 training steps."""
    run = tmp_path_factory.mktemp('grasp_run')
    assert cli.main(['rl', 'grasp-train', '--out', str(run), '--set', 'trays=2', '--set', 'attempts_per_tray=2',
                     '--set', 'workers=1', '--set', 'steps=5', '--set', 'batch_size=4']) == 0
    return run


def test_a_tiny_run_collects_trains_and_grasps_held_out_trays(trained_run):
    attempts = GraspAttempts.load(trained_run / 'grasp_attempts.npz')
    assert len(attempts.tray) == 4 and attempts.scenes.shape == (2, 128, 128, 3)
    assert attempts.reach_mask.shape == (32, 32) and 0 < attempts.reach_mask.sum() < 32 * 32
    policy = load_grasp_policy(trained_run / 'grasp_policy.safetensors', device=torch.device('cpu'))
    config = load_sim_config(num_objects=3)
    evaluation = evaluate(config, 'learned', policy, 1, EVAL_SEED, 'front_left')
    trial = evaluation.trials[0]
    assert trial.seed >= EVAL_SEED and trial.reason
    assert np.isfinite(policy.q_map(attempts.scenes[0], attempts.object_images[0])[attempts.reach_mask]).all()


def test_a_bare_file_name_names_the_shipped_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # no grasp_policy.safetensors here: the name is the shipped file's
    assert load_grasp_policy('grasp_policy.safetensors', device=torch.device('cpu')).path == SHIPPED_POLICY


def test_policy_files_refuse_pickles_other_grasp2vecs_shapes_and_views(trained_run, tmp_path):
    path = trained_run / 'grasp_policy.safetensors'
    pickled = tmp_path / 'policy.pt'
    pickled.write_bytes(pickle.dumps({'weights': [1, 2]}))
    with pytest.raises(CheckpointError, match='pickle'):
        load_grasp_policy(pickled)
    policy = load_grasp_policy(path, device=torch.device('cpu'))
    wrong = tmp_path / 'wrong.safetensors'
    network = GraspQNetwork(GraspQConfig(head_width=8))
    network.config = GraspQConfig(head_width=9)   # the header then names another shape than the weights have
    save_grasp_policy(wrong, network, policy.reach_mask, policy.camera_view, policy.tray_floor_z,
                      policy.features.model_id)
    with pytest.raises(CheckpointError, match='does not fit its own config'):
        load_grasp_policy(wrong)
    other = tmp_path / 'other.safetensors'
    save_grasp_policy(other, policy.network, policy.reach_mask, policy.camera_view, policy.tray_floor_z,
                      'grasp2vec:other:step1:00')
    with pytest.raises(CheckpointError, match='grasp2vec:other:step1:00'):
        load_grasp_policy(other)
    small = load_sim_config(image_size=(64, 64))
    camera = next(c for c in small.cameras if c.name == 'front_left')
    view = GraspView(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), camera, small.tray_floor_z)
    with pytest.raises(ValueError, match='width differs'):
        policy(view)
    moved = dataclasses.replace(camera, width=128, height=128, eye=(1.2, 0.45, 0.55))
    assert view_of(moved)['eye'] != policy.camera_view['eye']
    with pytest.raises(ValueError, match='eye differs'):
        policy(dataclasses.replace(view, camera=moved))


@pytest.mark.parametrize('arguments, named', [
    (['--set', 'tray=3'], "'tray'"),
    (['--set', 'steps=0'], 'got 0'),
    (['--set', 'camera=top'], "'top'"),
])
def test_grasp_train_command_refuses_bad_input_in_one_line(arguments, named, capsys, tmp_path):
    assert cli.main(['rl', 'grasp-train', '--out', str(tmp_path / 'run'), *arguments]) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and named in error, error


def test_grasp_eval_refuses_a_pickled_policy_in_one_line(capsys, tmp_path):
    pickled = tmp_path / 'policy.pt'
    pickled.write_bytes(pickle.dumps([1]))
    assert cli.main(['rl', 'grasp-eval', '--policy', 'learned', '--grasp-policy', str(pickled), '--trials', '1']) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'policy.pt' in error, error


def test_the_shipped_grasp_config_loads():
    config = load_grasp_config(Path('config/grasp/grasp.yaml'))
    assert config.trays == 500 and config.collection().first_seed + config.trays <= EVAL_SEED
