"""`ssl-robot eval` end to end: every method trained for a few steps on synthetic bags, then evaluated on held-out
bags against its baselines; and the inputs it must refuse, each with one line naming the file and the problem."""

from __future__ import annotations

import dataclasses
import json
import os
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_data_fixtures import BagSpec, Grasp, segmentation_labels, write_bag

from ssl_robot import cli, topics
from ssl_robot.data.config import DataConfig
from ssl_robot.data.datasets import make_dataset
from ssl_robot.data.reader import BagError
from ssl_robot.images import resize_labels
from ssl_robot.models import (BetaVAEConfig, CCVAEConfig, CheckpointError, Grasp2VecConfig, MultiFrameTCNConfig,
                              SingleViewTCNConfig, TCNConfig, save_checkpoint)
from ssl_robot.train.baselines import alignment_chance, random_model
from ssl_robot.train.checkpoint import MODEL_FILE, latest_checkpoint
from ssl_robot.train.config import TrainConfig
from ssl_robot.inference.model_holder import default_checkpoint
from ssl_robot.train.evaluate import EvalError, EvalOptions, evaluate_run, load_run
from ssl_robot.train.loop import train
from ssl_robot.train.report import PNG_SIGNATURE

SIZE = 16
SMALL = {'image_size': SIZE, 'encoder_widths': (8, 8)}
MODELS = {
    'tcn': TCNConfig(**SMALL, embedding_dim=8, negative_window=3),
    'svtcn': SingleViewTCNConfig(**SMALL, embedding_dim=8, negative_radius=3),
    'mftcn': MultiFrameTCNConfig(**SMALL, embedding_dim=8, num_frames=2, stride=2, temporal_channels=8,
                                 negative_window=3),
    'grasp2vec': Grasp2VecConfig(**SMALL, embedding_dim=8),
    'betavae': BetaVAEConfig(**SMALL, decoder_widths=(8, 8), latent_dim=4),
    'ccvae': CCVAEConfig(**SMALL, decoder_widths=(8, 8), latent_dim=4, context_dim=4),
}
MOTION_TRAIN = BagSpec(ground_truth=True, episode_ticks=(40, 40))
# Images on every tick, so that every ground-truth flag takes both values (gripper_contact is true on odd ticks only).
MOTION_HELD_OUT = BagSpec(ground_truth=True, episode_ticks=(30, 40, 36, 24), record_every=1, start_ns=5_000_000_000)
GRASPS = tuple(Grasp(start + 2, start + 6, start + 4, index % 2)
               for index, start in enumerate(range(0, 120, 12))) + (Grasp(122, 126, None, 0),)
GRASP_BAG = BagSpec(grasps=GRASPS, segmentation=True, episode_ticks=(48, 48, 36), record_every=4)
OPTIONS = EvalOptions(batch_size=16, retrieval_batch=4, knn_k=3, goals_per_episode=4, references_per_episode=8,
                      plot_examples=3)


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('bags')
    return {'train': write_bag(root / 'train', MOTION_TRAIN), 'held_out': write_bag(root / 'held_out', MOTION_HELD_OUT),
            'grasp': write_bag(root / 'grasp', GRASP_BAG),
            'no_ground_truth': write_bag(root / 'no_ground_truth', BagSpec())}


def train_run(method: str, bag: Path, out: Path) -> Path:
    config = TrainConfig(method=method, model=MODELS[method], steps=2, batch_size=8, num_workers=0, device='cpu',
                         checkpoint_every=0, checkpoint_every_s=0, log_every=1,
                         data=DataConfig(episodes_per_batch=2, val_fraction=0.0))
    result = train(config, lambda shard: make_dataset(method, [bag], config.data, 'train', batch_size=8,
                                                      seed=shard.seed, shard=(shard.rank, shard.world_size)), out)
    assert result.step == 2
    return out


@pytest.fixture(scope='module')
def runs(bags, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('runs')
    return {method: train_run(method, bags['grasp' if method == 'grasp2vec' else 'train'], root / method)
            for method in MODELS}


def report_files(out: Path, report: dict) -> None:
    """report.json is what evaluate_run returned, report.md has the table, and every plot is a PNG."""
    assert json.loads((out / 'report.json').read_text()) == report
    markdown = (out / 'report.md').read_text()
    for row in report['rows']:
        assert row['metric'] in markdown
    assert report['plots']
    for relative in report['plots'].values():
        assert (out / relative).read_bytes().startswith(PNG_SIGNATURE)


def rows_by_metric(report: dict) -> dict[str, dict]:
    return {row['metric']: row['values'] for row in report['rows']}


def in_unit_interval(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and 0 <= value <= 1


def test_tcn_report_has_alignment_and_attribute_rows_against_every_baseline(bags, runs, tmp_path):
    out = tmp_path / 'eval'
    report = evaluate_run(runs['tcn'], [bags['held_out']], out, {'svtcn': runs['svtcn']}, options=OPTIONS,
                          device='cpu')

    report_files(out, report)
    rows = rows_by_metric(report)
    assert list(rows) == ['alignment error', 'kNN error: gripper_closed', 'kNN error: object_lifted',
                          'kNN error: gripper_contact']
    for values in rows.values():
        assert list(values) == ['trained', 'random encoder', 'raw pixels', 'single-view TCN', 'chance']
        assert all(in_unit_interval(value) for value in values.values()), values
    frames = [len(ticks) for ticks in MOTION_HELD_OUT.episode_frame_ticks()]
    assert rows['alignment error']['chance'] == pytest.approx(alignment_chance(frames))
    # Views of one time differ only in their camera colour, so raw pixels align every frame with its twin.
    assert rows['alignment error']['raw pixels'] == 0
    meta = report['meta']
    assert meta['checkpoint'] == str(latest_checkpoint(runs['tcn'] / 'checkpoints') / MODEL_FILE)
    assert meta['bags'] == [str(bags['held_out'])] and meta['step'] == 2
    # Episodes alternate between the halves; every view of a time is a row.
    assert meta['probe'] == {'fit_episodes': 2, 'fit_rows': 2 * (frames[0] + frames[2]),
                             'test_episodes': 2, 'test_rows': 2 * (frames[1] + frames[3])}
    assert meta['baselines']['svtcn'] == str(latest_checkpoint(runs['svtcn'] / 'checkpoints') / MODEL_FILE)


def test_every_measured_figure_has_a_confidence_interval_over_its_episodes(bags, runs, tmp_path):
    report = evaluate_run(runs['tcn'], [bags['held_out']], tmp_path, {'svtcn': runs['svtcn']}, options=OPTIONS,
                          device='cpu')

    rows = {row['metric']: row for row in report['rows']}
    alignment = rows['alignment error']
    assert alignment['interval_units'] == '4 episodes'
    assert set(alignment['intervals']) == {'trained', 'random encoder', 'raw pixels', 'single-view TCN'}
    for column, (low, high) in alignment['intervals'].items():
        assert 0 <= low <= alignment['values'][column] <= high <= 1, column
    knn = rows['kNN error: gripper_closed']
    assert knn['interval_units'] == '2 test episodes'
    # The majority class's error varies over the test episodes too.
    assert set(knn['intervals']) == {'trained', 'random encoder', 'raw pixels', 'single-view TCN', 'chance'}
    assert 'chance: the majority class of the fit half, scored on the test half' in knn['note']
    assert '95 % CI over 4 episodes' in (tmp_path / 'report.md').read_text()


def test_grasp_and_vae_figures_have_intervals_over_batches_and_episodes(bags, runs, tmp_path):
    grasps = {row['metric']: row for row in evaluate_run(runs['grasp2vec'], [bags['grasp']], tmp_path / 'g',
                                                           options=OPTIONS, device='cpu')['rows']}
    assert grasps['retrieval top-1']['interval_units'] == '2 batches'   # 10 grasps in batches of 4
    assert grasps['localisation success']['interval_units'] == '3 episodes'
    vaes = {row['metric']: row for row in evaluate_run(runs['ccvae'], [bags['held_out']], tmp_path / 'v',
                                                         compare=runs['betavae'], options=OPTIONS,
                                                         device='cpu')['rows']}
    for metric in ('reconstruction error', 'changed-pixel reconstruction error', 'goal consistency'):
        assert {'trained', 'compare: betavae', 'random encoder'} <= set(vaes[metric]['intervals'])
    assert vaes['reconstruction error']['interval_units'] == vaes['goal consistency']['interval_units'] == '4 episodes'
    # An episode in which nothing moved has no changed pixels, and so no say in that figure.
    assert vaes['changed-pixel reconstruction error']['interval_units'] in ('2 episodes', '3 episodes', '4 episodes')
    changed = vaes['changed-pixel reconstruction error']['values']
    # The first frame rebuilds the unchanged pixels exactly, so over the changed ones it does worse than overall.
    assert changed['first frame'] > vaes['reconstruction error']['values']['first frame'] > 0
    assert changed['mean image'] is None and changed['trained'] > 0
    shown = vaes['goals showing a change']
    assert 0 <= shown['values']['trained'] <= 1 and shown['values']['first frame'] == 0
    assert shown['values']['compare: betavae'] is None   # a beta-VAE's goals have no context to change from
    betavae_rows = evaluate_run(runs['betavae'], [bags['held_out']], tmp_path / 'b', options=OPTIONS, device='cpu')
    assert 'goals showing a change' not in {row['metric'] for row in betavae_rows['rows']}


def test_a_checkpoint_file_is_evaluated_as_the_run_it_came_from(bags, runs, tmp_path, monkeypatch):
    checkpoint = latest_checkpoint(runs['betavae'] / 'checkpoints') / MODEL_FILE
    from_run = evaluate_run(runs['betavae'], [bags['held_out']], tmp_path / 'run', options=OPTIONS, device='cpu')
    from_file = evaluate_run(checkpoint, [bags['held_out']], tmp_path / 'file', options=OPTIONS, device='cpu')

    assert from_file['rows'] == from_run['rows']
    assert from_file['meta']['checkpoint'] == from_file['meta']['run'] == str(checkpoint)
    # With no --out, the report of a checkpoint file goes to runs/eval-NAME, never beside the (shipped) file.
    monkeypatch.chdir(tmp_path)
    status = cli.main(['eval', str(checkpoint), '--bag', str(bags['held_out']), '--device', 'cpu'])
    assert status == 0
    assert (tmp_path / 'runs' / 'eval-model' / 'report.md').is_file()


def test_a_shipped_checkpoint_loads_with_the_data_settings_it_was_trained_with():
    run = load_run(default_checkpoint('tcn'), torch.device('cpu'))
    assert (run.method, run.checkpoint, run.config.data.views) == ('tcn', default_checkpoint('tcn'), 3)
    with pytest.raises(EvalError, match="--baseline svtcn .*tcn.safetensors is a 'tcn' checkpoint"):
        load_run(default_checkpoint('tcn'), torch.device('cpu'), role='--baseline svtcn', methods=('svtcn',))


def test_held_out_rigs_are_reported_beside_the_bags_rig_metric_by_metric(bags, runs, tmp_path, capsys):
    moved = write_bag(tmp_path / 'moved', dataclasses.replace(MOTION_HELD_OUT, rig='held_out_a'))
    status = cli.main(['eval', str(runs['tcn']), '--bag', str(bags['held_out']), '--rig', f'held_out_a={moved}',
                       '--out', str(tmp_path / 'eval'), '--knn-k', '3', '--device', 'cpu'])
    assert status == 0
    report = json.loads((tmp_path / 'eval' / 'report.json').read_text())
    report_files(tmp_path / 'eval', report)

    rows = rows_by_metric(report)
    # The synthetic --bag bag names no rig; the moved one does.
    assert list(rows)[:2] == ['alignment error [bags]', 'alignment error [held_out_a]']
    assert len(rows) == 8
    # The two bags hold the same images, so every figure is the same on both rigs.
    for metric in ('alignment error', 'kNN error: object_lifted'):
        assert rows[f'{metric} [bags]'] == rows[f'{metric} [held_out_a]']
    assert report['meta']['rigs']['held_out_a']['bags'] == [str(moved)]
    assert report['meta']['rigs']['held_out_a']['recorded_rigs'] == ['held_out_a']
    assert {'embedding_trajectories', 'embedding_trajectories-held_out_a'} == set(report['plots'])
    assert 'alignment error [held_out_a]: trained ' in capsys.readouterr().out


def test_a_bag_given_for_a_rig_it_was_not_recorded_with_is_refused(bags, runs, tmp_path):
    moved = write_bag(tmp_path / 'moved', dataclasses.replace(MOTION_HELD_OUT, rig='held_out_a'))
    with pytest.raises(EvalError, match=f'--rig held_out_b={moved}: the bags were recorded with rig held_out_a'):
        evaluate_run(runs['tcn'], [bags['held_out']], tmp_path, rigs={'held_out_b': [moved]}, options=OPTIONS,
                     device='cpu')


def test_tcn_without_the_svtcn_baseline_reports_it_as_not_measured(bags, runs, tmp_path):
    report = evaluate_run(runs['tcn'], [bags['held_out']], tmp_path, options=OPTIONS, device='cpu')

    for values in rows_by_metric(report).values():
        assert values['single-view TCN'] is None and in_unit_interval(values['trained'])
    assert '| n/a |' in (tmp_path / 'report.md').read_text()


def test_mftcn_skips_the_times_before_the_first_full_clip_in_every_column(bags, runs, tmp_path):
    report = evaluate_run(runs['mftcn'], [bags['held_out']], tmp_path, {'svtcn': runs['svtcn']}, options=OPTIONS,
                          device='cpu')

    lookback = MODELS['mftcn'].lookback_frames - 1
    frames = [len(ticks) - lookback for ticks in MOTION_HELD_OUT.episode_frame_ticks()]
    assert report['meta']['first_time'] == lookback == 2
    assert report['meta']['frames_per_view'] == sum(frames)
    rows = rows_by_metric(report)
    assert rows['alignment error']['chance'] == pytest.approx(alignment_chance(frames))
    assert rows['alignment error']['raw pixels'] == 0
    for values in rows.values():
        assert all(in_unit_interval(value) for value in values.values()), values


def test_svtcn_on_its_own_scores_what_the_svtcn_column_of_a_tcn_report_says(bags, runs, tmp_path):
    options = dataclasses.replace(OPTIONS, max_probe_frames=10)
    report = evaluate_run(runs['svtcn'], [bags['held_out']], tmp_path / 'svtcn', options=options, device='cpu')
    tcn_report = evaluate_run(runs['tcn'], [bags['held_out']], tmp_path / 'tcn', {'svtcn': runs['svtcn']},
                              options=options, device='cpu')

    meta = report['meta']
    assert meta['cameras'] == [topics.camera_image('left'), topics.camera_image('right')]
    assert (meta['probe']['fit_rows'], meta['probe']['test_rows']) == (2 * 10, 2 * 10)
    tcn_rows = rows_by_metric(tcn_report)
    for metric, values in rows_by_metric(report).items():
        assert list(values) == ['trained', 'random encoder', 'raw pixels', 'chance']
        assert all(in_unit_interval(value) for value in values.values()), values
        assert values['trained'] == tcn_rows[metric]['single-view TCN']
        assert values['raw pixels'] == tcn_rows[metric]['raw pixels']


def test_a_checkpoint_of_the_random_encoders_weights_scores_exactly_as_the_random_encoder(bags, runs, tmp_path):
    run = copy_run(runs['tcn'], tmp_path / 'run')
    config = TrainConfig(method='tcn', model=MODELS['tcn'])
    save_checkpoint(latest_checkpoint(run / 'checkpoints') / MODEL_FILE,
                    random_model('tcn', config.model, torch.device('cpu')), step=0, code_version='test')

    report = evaluate_run(run, [bags['held_out']], tmp_path / 'eval', options=OPTIONS, device='cpu')
    for metric, values in rows_by_metric(report).items():
        assert values['trained'] == values['random encoder'], metric
    trained = evaluate_run(runs['tcn'], [bags['held_out']], tmp_path / 'trained', options=OPTIONS, device='cpu')
    assert rows_by_metric(trained)['alignment error']['random encoder'] == \
        rows_by_metric(report)['alignment error']['random encoder']


def test_grasp2vec_report_has_retrieval_and_localisation_against_random_encoder_and_chance(bags, runs, tmp_path):
    report = evaluate_run(runs['grasp2vec'], [bags['grasp']], tmp_path, options=OPTIONS, device='cpu')

    report_files(tmp_path, report)
    rows = rows_by_metric(report)
    assert rows['retrieval top-1']['chance'] == 1 / 4
    labels = resize_labels(segmentation_labels(GRASP_BAG.height, GRASP_BAG.width), SIZE)
    assert rows['localisation success']['chance'] == pytest.approx(np.mean([labels == 1, labels == 2]))
    for values in rows.values():
        assert list(values) == ['trained', 'random encoder', 'chance']
        assert all(in_unit_interval(value) for value in values.values()), values
    assert (report['meta']['successful_grasps'], report['meta']['failed_grasps']) == (10, 1)


def test_ccvae_compared_with_betavae_in_one_report(bags, runs, tmp_path):
    report = evaluate_run(runs['ccvae'], [bags['held_out']], tmp_path, compare=runs['betavae'], options=OPTIONS,
                          device='cpu')

    report_files(tmp_path, report)
    rows = rows_by_metric(report)
    assert list(rows['reconstruction error']) == ['trained', 'compare: betavae', 'random encoder', 'mean image',
                                                  'first frame', 'chance']
    assert rows['reconstruction error']['chance'] is None and rows['goal consistency']['mean image'] is None
    assert rows['goal consistency']['chance'] == 1 / 4  # four episodes, as many goals each
    for metric, values in rows.items():
        assert all(in_unit_interval(value) for column, value in values.items() if value is not None), metric
        if metric != 'goals showing a change':
            assert values['trained'] is not None and values['compare: betavae'] is not None
    assert report['meta']['compare']['run'] == str(runs['betavae'])


def test_betavae_alone_and_the_default_output_directory(bags, runs):
    report = evaluate_run(runs['betavae'], [bags['held_out']], options=OPTIONS, device='cpu')

    report_files(runs['betavae'] / 'eval', report)
    assert list(rows_by_metric(report)['goal consistency']) == ['trained', 'random encoder', 'mean image',
                                                                'first frame', 'chance']


def test_command_line_writes_the_report_and_prints_its_rows(bags, runs, tmp_path, capsys):
    status = cli.main(['eval', str(runs['tcn']), '--bag', str(bags['held_out']), '--out', str(tmp_path),
                       '--baseline', f'svtcn={runs["svtcn"]}', '--knn-k', '3', '--device', 'cpu'])

    assert status == 0
    printed = capsys.readouterr().out
    assert 'alignment error: trained ' in printed and f'report: {tmp_path / "report.md"}' in printed
    assert json.loads((tmp_path / 'report.json').read_text())['method'] == 'tcn'


# --- refusals ---------------------------------------------------------------------------------------------------

def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


def one_line_error(argv: list[str], capsys) -> str:
    """The error `ssl-robot` prints for argv: exactly one line, exit status 1."""
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_run_without_checkpoint_is_refused(bags, runs, tmp_path, capsys):
    run = copy_run(runs['tcn'], tmp_path / 'run')
    (run / 'checkpoints' / 'latest').unlink()

    error = one_line_error(['eval', str(run), '--bag', str(bags['held_out'])], capsys)
    assert str(run) in error and 'no checkpoint' in error


def test_checkpoint_of_another_method_is_refused(bags, runs, tmp_path):
    run = copy_run(runs['tcn'], tmp_path / 'run')
    checkpoint = latest_checkpoint(run / 'checkpoints') / MODEL_FILE
    shutil.copy(latest_checkpoint(runs['betavae'] / 'checkpoints') / MODEL_FILE, checkpoint)

    with pytest.raises(CheckpointError, match=f"{checkpoint} holds a 'betavae' checkpoint, not 'tcn'"):
        evaluate_run(run, [bags['held_out']], tmp_path / 'eval', device='cpu')


def test_checkpoint_of_another_shape_is_refused(bags, runs, tmp_path):
    run = copy_run(runs['tcn'], tmp_path / 'run')
    config = yaml.safe_load((run / 'config.yaml').read_text())
    config['model']['embedding_dim'] = 16
    (run / 'config.yaml').write_text(yaml.safe_dump(config))

    with pytest.raises(CheckpointError, match=r'does not fit this .tcn. model: .*encoder\.project\.weight has shape'):
        evaluate_run(run, [bags['held_out']], tmp_path / 'eval', device='cpu')


class RunsCodeWhenUnpickled:
    """Unpickling this makes the directory `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_pickled_checkpoint_is_refused_without_being_unpickled(bags, runs, tmp_path):
    run = copy_run(runs['tcn'], tmp_path / 'run')
    checkpoint = latest_checkpoint(run / 'checkpoints') / MODEL_FILE
    marker = tmp_path / 'unpickled'
    torch.save({'weights': torch.zeros(2), 'payload': RunsCodeWhenUnpickled(marker)}, checkpoint)

    with pytest.raises(CheckpointError, match='pickled files .* are refused'):
        evaluate_run(run, [bags['held_out']], tmp_path / 'eval', device='cpu')
    assert not marker.exists()


def test_baseline_run_of_another_method_is_refused(bags, runs, tmp_path):
    with pytest.raises(EvalError, match=f"--baseline svtcn {runs['tcn']} is a 'tcn' run"):
        evaluate_run(runs['mftcn'], [bags['held_out']], tmp_path, {'svtcn': runs['tcn']}, device='cpu')
    with pytest.raises(EvalError, match="--compare sets one VAE run beside another; .* is a 'grasp2vec' run"):
        evaluate_run(runs['grasp2vec'], [bags['grasp']], tmp_path, compare=runs['betavae'], device='cpu')


def test_truncated_bag_is_one_line_naming_it(bags, runs, tmp_path, capsys):
    bag = shutil.copytree(bags['held_out'], tmp_path / 'truncated')
    storage = sorted(bag.glob('*.mcap'))[0]
    storage.write_bytes(storage.read_bytes()[:len(storage.read_bytes()) // 2])

    error = one_line_error(['eval', str(runs['tcn']), '--bag', str(bag), '--out', str(tmp_path / 'eval')], capsys)
    assert str(bag) in error and ('corrupt' in error or 'truncated' in error)
    assert not (tmp_path / 'eval').exists()


def test_bag_without_the_methods_topics_lists_them(bags, runs, tmp_path, capsys):
    error = one_line_error(['eval', str(runs['tcn']), '--bag', str(bags['no_ground_truth']), '--out',
                            str(tmp_path)], capsys)
    assert f'{bags["no_ground_truth"]}: lacks topic {topics.GROUND_TRUTH} needed for tcn' in error

    with pytest.raises(BagError, match=f'lacks topics .*{topics.GRASP_EVENTS}.*segmentation'):
        evaluate_run(runs['grasp2vec'], [bags['held_out']], tmp_path, device='cpu')
