"""The training loop on the toy method: run directory contents, seeding, resume after an interruption, the time
budget, SIGTERM to a training process, and the `ssl-robot train` entry point."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssl_robot.data.config import DataConfig
from ssl_robot.models.registry import METHODS
from ssl_robot.models.tcn import TCNConfig
from ssl_robot.train.checkpoint import checkpoint_step, latest_checkpoint
from ssl_robot.train.cli import add_train_arguments, run_train
from ssl_robot.train.data_stream import DataShard
from ssl_robot.train.config import TrainConfig, config_from_dict, load_train_config
from ssl_robot.train.errors import TrainError
from ssl_robot.train.loop import train
from ssl_robot.train.run_dir import RunDir
from train_toy import TOY_METHOD, ToyConfig, make_toy_dataset, toy_batches

REPO = Path(__file__).resolve().parent.parent
TOY_SCRIPT = Path(__file__).resolve().parent / 'train_toy.py'


@pytest.fixture(autouse=True)
def toy_method(monkeypatch):
    monkeypatch.setitem(METHODS, 'toy', TOY_METHOD)


def toy_config(**changes) -> TrainConfig:
    return TrainConfig(**{'method': 'toy', 'model': ToyConfig(), 'steps': 10, 'batch_size': 8, 'lr': 0.05,
                          'log_every': 1, 'checkpoint_every': 0, 'checkpoint_every_s': 0, 'num_workers': 0,
                          'device': 'cpu', 'data': DataConfig(episodes_per_batch=1), **changes})


def scalars(run: Path, tag: str = 'train/loss') -> list[tuple[int, float]]:
    events = EventAccumulator(str(run / 'tensorboard'))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def final_weights(run: Path) -> dict:
    return safetensors.torch.load_file(latest_checkpoint(run / 'checkpoints') / 'model.safetensors')


def optimizer_tensors(run: Path) -> dict:
    return safetensors.torch.load_file(latest_checkpoint(run / 'checkpoints') / 'optimizer.safetensors')


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equal(b[name]), name


def test_run_dir_holds_config_version_checkpoint_and_scalars(tmp_path):
    config = toy_config(steps=6, keep_checkpoints=2, checkpoint_every=2)
    result = train(config, toy_batches(config), tmp_path / 'run')

    run = tmp_path / 'run'
    assert (result.step, result.exit_code) == (6, 0)
    saved = yaml.safe_load((run / 'config.yaml').read_text())
    assert config_from_dict('toy', ToyConfig, saved) == config
    [start] = json.loads((run / 'version.json').read_text())['starts']
    assert start['step'] == 0
    assert start['package_version'] == '0.1.0'
    assert len(start['git_commit']) == 40 and isinstance(start['git_dirty'], bool)  # the tests run from a checkout
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == ['latest', 'step_000000004', 'step_000000006']
    assert [step for step, _ in scalars(run)] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in scalars(run, 'train/prediction_std')] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in scalars(run, 'train/grad_norm')] == [1, 2, 3, 4, 5, 6]


def test_same_seed_gives_the_same_loss_curve_and_another_seed_another(tmp_path):
    curves = {}
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        config = toy_config(seed=seed, steps=8)
        train(config, toy_batches(config), tmp_path / name)
        curves[name] = scalars(tmp_path / name)
    assert curves['a'] == curves['b']
    assert curves['a'] != curves['c']


def test_interrupted_then_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    config = toy_config(steps=10)
    train(config, toy_batches(config), tmp_path / 'straight')

    interrupted = train(config, toy_batches(config, signal_at_step=5), tmp_path / 'resumed')
    assert (interrupted.step, interrupted.exit_code) == (6, 128 + signal.SIGTERM)
    assert checkpoint_step(latest_checkpoint(tmp_path / 'resumed' / 'checkpoints')) == 6
    resumed = train(config, toy_batches(config), tmp_path / 'resumed')

    assert (resumed.step, resumed.exit_code) == (10, 0)
    assert_same_tensors(final_weights(tmp_path / 'resumed'), final_weights(tmp_path / 'straight'))
    assert_same_tensors(optimizer_tensors(tmp_path / 'resumed'), optimizer_tensors(tmp_path / 'straight'))
    assert scalars(tmp_path / 'resumed') == scalars(tmp_path / 'straight')
    starts = json.loads((tmp_path / 'resumed' / 'version.json').read_text())['starts']
    assert [start['step'] for start in starts] == [0, 6]


def test_raising_steps_continues_a_finished_run(tmp_path, capsys):
    train(toy_config(steps=4), toy_batches(toy_config()), tmp_path)
    result = train(toy_config(steps=7), toy_batches(toy_config()), tmp_path)
    assert result.step == 7
    assert 'resuming' in capsys.readouterr().err
    assert [step for step, _ in scalars(tmp_path)] == list(range(1, 8))
    assert yaml.safe_load((tmp_path / 'config.yaml').read_text())['steps'] == 7


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    config = toy_config(steps=1000, max_minutes=1e-9)
    result = train(config, toy_batches(config), tmp_path)
    assert (result.step, result.exit_code) == (1, 0)
    assert checkpoint_step(latest_checkpoint(tmp_path / 'checkpoints')) == 1


@pytest.mark.parametrize('schedule, factors', [('constant', [1, 1, 1, 1]),
                                               ('cosine', [1, 0.8535534, 0.5, 0.1464466])])
def test_learning_rate_follows_the_schedule_and_survives_a_resume(tmp_path, schedule, factors):
    config = toy_config(steps=4, lr_schedule=schedule)
    assert train(config, toy_batches(config, signal_at_step=1), tmp_path).step == 2
    train(config, toy_batches(config), tmp_path)
    logged = scalars(tmp_path, 'train/lr')
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    assert [value for _, value in logged] == pytest.approx([0.05 * factor for factor in factors])


def test_resuming_as_another_method_is_refused(tmp_path):
    train(toy_config(steps=2), toy_batches(toy_config()), tmp_path)
    tcn = load_train_config('tcn', TCNConfig)
    with pytest.raises(TrainError, match=f"{tmp_path} holds a 'toy' run; it cannot resume as 'tcn'"):
        train(tcn, toy_batches(tcn), tmp_path)


def test_unusable_data_leaves_the_run_directory_free(tmp_path):
    def no_bags(shard: DataShard):
        raise TrainError('bags: lacks topic /camera')

    with pytest.raises(TrainError, match='lacks topic'):
        train(toy_config(), no_bags, tmp_path)
    assert not (tmp_path / 'config.yaml').exists()
    tcn = load_train_config('tcn', TCNConfig)
    with pytest.raises(TrainError, match='lacks topic'):
        train(tcn, no_bags, tmp_path)  # not refused as a 'toy' run


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('not a run')
    with pytest.raises(TrainError, match='not a run directory'):
        train(toy_config(), toy_batches(toy_config()), tmp_path)


def test_a_second_training_process_on_the_same_run_is_refused(tmp_path):
    with RunDir(tmp_path).lock(), pytest.raises(TrainError, match='another training process is using'):
        train(toy_config(), toy_batches(toy_config()), tmp_path)


def test_worker_processes_feed_the_loop(tmp_path):
    config = toy_config(steps=4, num_workers=2)
    assert train(config, toy_batches(config), tmp_path).step == 4


def parse_train_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(argv)


def test_run_train_takes_bags_config_and_overrides(tmp_path, capsys):
    config_file = tmp_path / 'toy.yaml'
    config_file.write_text('steps: 3\nmodel: {noise: 0.5}\n')
    args = parse_train_args('toy', '--bag', str(tmp_path), '--out', str(tmp_path / 'run'), '--config',
                            str(config_file), '--set', 'device=cpu', '--set', 'num_workers=0', '--print-config')
    assert run_train(args, make_dataset=make_toy_dataset) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed['steps'], printed['model']['noise'], printed['device']) == (3, 0.5, 'cpu')
    assert not (tmp_path / 'run').exists()

    args.print_config = False
    assert run_train(args, make_dataset=make_toy_dataset) == 0
    assert checkpoint_step(latest_checkpoint(tmp_path / 'run' / 'checkpoints')) == 3


def test_run_train_errors_are_train_errors(tmp_path, monkeypatch):
    with pytest.raises(TrainError, match='no such bag: .*missing.mcap'):
        run_train(parse_train_args('toy', '--bag', str(tmp_path / 'missing.mcap'), '--out', str(tmp_path)),
                  make_dataset=make_toy_dataset)
    with pytest.raises(TrainError, match="--set stepz=1: unknown key 'stepz'"):
        run_train(parse_train_args('toy', '--bag', str(tmp_path), '--out', str(tmp_path), '--set', 'stepz=1'))
    monkeypatch.setitem(sys.modules, 'ssl_robot.data.datasets', types.ModuleType('ssl_robot.data.datasets'))
    with pytest.raises(TrainError, match='ssl_robot.data.datasets.make_dataset is not available'):
        run_train(parse_train_args('toy', '--bag', str(tmp_path), '--out', str(tmp_path / 'run')))


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # a safety net against a hung child, not a timing assertion
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f'training exited early with {process.returncode}: {process.stderr.read()}')
        if time.monotonic() > deadline:
            raise AssertionError(f'training never reached step {path.name}')
        time.sleep(0.05)


def test_sigterm_to_a_training_process_leaves_a_checkpoint_to_resume_from(tmp_path):
    run = tmp_path / 'run'
    started = tmp_path / 'started'
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'TOY_STARTED_FILE': str(started)}
    command = [sys.executable, str(TOY_SCRIPT), 'toy', '--bag', str(tmp_path), '--out', str(run), '--set',
               'steps=1000000', '--set', 'num_workers=0', '--set', 'device=cpu', '--set', 'checkpoint_every=0',
               '--set', 'checkpoint_every_s=0']
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(started, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert 'by SIGTERM: run the same command to continue' in stderr
    stopped_at = checkpoint_step(latest_checkpoint(run / 'checkpoints'))
    assert stopped_at >= 3  # only the signal could have written it: periodic checkpoints were off

    resume = toy_config(steps=stopped_at + 2)
    assert train(resume, toy_batches(resume), run).step == stopped_at + 2
    starts = json.loads((run / 'version.json').read_text())['starts']
    assert [start['step'] for start in starts] == [0, stopped_at]


def synthetic_batches(method: str, image_size: int, batch_size: int = 4):
    """Random batches in each registered method's format (see the model modules' docstrings)."""
    def images(*leading: int) -> torch.Tensor:
        return torch.rand(*leading, 3, image_size, image_size)

    times = torch.arange(batch_size) * 20  # far apart: every other row is a negative
    pairs = torch.arange(batch_size) // 2 * 20 + torch.arange(batch_size) % 2  # svtcn: neighbours are positives
    episode = torch.zeros(batch_size, dtype=torch.long)
    batch = {
        'tcn': lambda: {'frames': images(batch_size, 2), 'times': times, 'episode': episode},
        'svtcn': lambda: {'frames': images(batch_size), 'times': pairs, 'episode': episode},
        'mftcn': lambda: {'clips': images(batch_size, 2, 2), 'times': times, 'episode': episode},
        'grasp2vec': lambda: {'pre': images(batch_size), 'post': images(batch_size), 'object': images(batch_size)},
        'betavae': lambda: {'state': images(batch_size)},
        'ccvae': lambda: {'state': images(batch_size), 'context': images(batch_size)},
    }[method]

    def make_batches(shard: DataShard):
        while True:
            yield batch()
    return make_batches


@pytest.mark.parametrize('method', ['tcn', 'svtcn', 'mftcn', 'grasp2vec', 'betavae', 'ccvae'])
def test_every_registered_method_trains_and_resumes(tmp_path, method):
    tiny = ['model.image_size=16', 'model.encoder_widths=[8, 8]', 'batch_size=4', 'data.episodes_per_batch=1',
            'device=cpu', 'num_workers=0', 'log_every=1', 'steps=2']
    tiny += {'mftcn': ['model.num_frames=2', 'model.stride=1'], 'betavae': ['model.decoder_widths=[8, 8]'],
             'ccvae': ['model.decoder_widths=[8, 8]']}.get(method, [])
    config = load_train_config(method, METHODS[method].config_class, None, tiny)
    assert train(config, synthetic_batches(method, 16), tmp_path).step == 2
    more = dataclasses.replace(config, steps=3)
    assert train(more, synthetic_batches(method, 16), tmp_path).step == 3
    assert [step for step, _ in scalars(tmp_path, 'train/grad_norm')] == [1, 2, 3]


@pytest.mark.parametrize('method, settings', [('tcn', []), ('betavae', ['model.decoder_widths=[8, 8]'])])
def test_train_reads_real_bags_through_ssl_robot_data(tmp_path, method, settings):
    pytest.importorskip('ssl_robot.data.datasets', reason='the bag reader has not landed')
    fixtures = pytest.importorskip('test_data_fixtures', reason='the synthetic bag fixtures have not landed')
    bag = fixtures.write_bag(tmp_path / 'bag', fixtures.BagSpec())
    tiny = ['steps=3', 'model.image_size=16', 'model.encoder_widths=[8, 8]', 'batch_size=8', 'num_workers=1',
            'device=cpu', 'data.episodes_per_batch=2', *settings]
    args = parse_train_args(method, '--bag', str(bag), '--out', str(tmp_path / 'run'),
                            *[f'--set={setting}' for setting in tiny])
    assert run_train(args) == 0
    assert checkpoint_step(latest_checkpoint(tmp_path / 'run' / 'checkpoints')) == 3


@pytest.mark.parametrize('damage, named', [
    (lambda checkpoint: (checkpoint / 'train_state.json').write_text(''), 'train_state.json is not a training state'),
    (lambda checkpoint: (checkpoint / 'train_state.json').write_text('{"step": 3}'),
     'train_state.json is not a training state: it lacks an integer step or the optimizer state'),
    (lambda checkpoint: (checkpoint / 'optimizer.safetensors').write_bytes(os.urandom(64)),
     'optimizer.safetensors is not a safetensors checkpoint: header length'),
    (lambda checkpoint: (checkpoint / 'optimizer.safetensors').write_bytes(
        (checkpoint / 'optimizer.safetensors').read_bytes()[:-20]), 'optimizer.safetensors is not a safetensors '
                                                                     'checkpoint, or is corrupt or truncated'),
])
def test_resuming_from_a_corrupt_checkpoint_ends_with_one_line_naming_the_file(tmp_path, monkeypatch, capsys, damage,
                                                                                named):
    from ssl_robot import cli
    monkeypatch.setattr('ssl_robot.train.cli._data_module_make_dataset', lambda: make_toy_dataset)
    argv = ['train', 'toy', '--bag', str(tmp_path), '--out', str(tmp_path / 'run'), '--set', 'steps=3',
            '--set', 'device=cpu', '--set', 'num_workers=0']
    assert cli.main(argv) == 0
    damage(latest_checkpoint(tmp_path / 'run' / 'checkpoints'))
    capsys.readouterr()
    argv[argv.index('steps=3')] = 'steps=5'
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert named in err and 'cannot be resumed from' in err and 'Traceback' not in err, err
    assert err.count('ssl-robot train: error:') == 1
