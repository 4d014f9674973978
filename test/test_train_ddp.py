"""DDP smoke test: `torchrun --standalone --nproc_per_node=2` on the CPU (gloo), over loopback only.

Two processes each train on their own batches; DDP averages their gradients, so with a noiseless toy model the
result must match one process training on both batches at once. Then the job resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from ssl_robot.data.config import DataConfig
from ssl_robot.models.registry import METHODS
from ssl_robot.ros.netns import in_loopback_only_namespace
from ssl_robot.train.checkpoint import checkpoint_step, latest_checkpoint
from ssl_robot.train.config import TrainConfig
from ssl_robot.train.data_stream import DataShard
from ssl_robot.train.loop import train
from train_toy import TOY_METHOD, ToyConfig, make_toy_dataset

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name('torchrun')
SETTINGS = {'device': 'cpu', 'num_workers': 0, 'batch_size': 8, 'lr': 0.05, 'log_every': 1,
            'checkpoint_every': 0, 'checkpoint_every_s': 0}


def torchrun_toy(tmp_path: Path, run: Path, steps: int) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), '--standalone', '--nproc_per_node=2', str(REPO / 'test' / 'train_toy.py'), 'toy',
               '--bag', str(tmp_path), '--out', str(run), '--set', f'steps={steps}', '--set', 'model.noise=0',
               '--set', 'data.episodes_per_batch=1', *[f'--set={key}={value}' for key, value in SETTINGS.items()]]
    if not in_loopback_only_namespace():
        command = [str(REPO / 'scripts' / 'loopback-run'), *command]
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'TOY_SHARD_DIR': str(tmp_path), 'MASTER_ADDR': '127.0.0.1',
           'GLOO_SOCKET_IFNAME': 'lo', 'OMP_NUM_THREADS': '1'}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def both_ranks_batches(config: TrainConfig):
    """The batches of ranks 0 and 1 of a 2-process job, concatenated: what DDP's averaged gradient is taken over."""
    def make_batches(shard: DataShard):
        ranks = [iter(make_toy_dataset('toy', [], config.data, 'train', batch_size=config.batch_size // 2,
                                       seed=0, shard=(rank, 2))) for rank in (0, 1)]
        while True:
            batches = [next(rank) for rank in ranks]
            yield {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}
    return make_batches


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_on_both_batches_and_resumes(tmp_path, monkeypatch):
    assert TORCHRUN.exists(), f'torchrun not found next to {sys.executable}'
    run = tmp_path / 'ddp'
    first = torchrun_toy(tmp_path, run, steps=6)
    assert first.returncode == 0, first.stderr
    assert len(list((run / 'tensorboard').iterdir())) == 1  # rank 0 logs, rank 1 does not

    monkeypatch.setitem(METHODS, 'toy', TOY_METHOD)
    single = TrainConfig(method='toy', model=ToyConfig(noise=0.0), steps=6, data=DataConfig(episodes_per_batch=1),
                         **{**SETTINGS, 'batch_size': 16})
    train(single, both_ranks_batches(single), tmp_path / 'single')
    ddp_weights, single_weights = (
        safetensors.torch.load_file(latest_checkpoint(path / 'checkpoints') / 'model.safetensors')
        for path in (run, tmp_path / 'single'))
    for name, tensor in single_weights.items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-5, atol=1e-6)

    resumed = torchrun_toy(tmp_path, run, steps=8)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint_step(latest_checkpoint(run / 'checkpoints')) == 8
    starts = json.loads((run / 'version.json').read_text())['starts']
    assert [start['step'] for start in starts] == [0, 6]
    shards = [json.loads(path.read_text()) for path in tmp_path.glob('rank*_seed*.json')]
    assert sorted((shard['rank'], shard['world_size']) for shard in shards) == [(0, 2), (0, 2), (1, 2), (1, 2)]
    assert len({shard['seed'] for shard in shards}) == 4  # per rank, and fresh after the resume
