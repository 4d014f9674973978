"""Training checkpoints: optimizer state through safetensors + JSON, atomic writes, the `latest` link, pruning."""

from __future__ import annotations

import json

import pytest
import safetensors
import torch

from ssl_robot.models.registry import METHODS
from ssl_robot.models.checkpoint import load_checkpoint
from ssl_robot.train import checkpoint as checkpoints
from ssl_robot.train.checkpoint import (checkpoint_step, delete_unfinished_checkpoints, latest_checkpoint,
                                        load_training_checkpoint, optimizer_state_from_tensors,
                                        optimizer_state_to_tensors, save_training_checkpoint)
from train_toy import TOY_METHOD, ToyConfig, ToyModel


@pytest.fixture(autouse=True)
def toy_method(monkeypatch):
    monkeypatch.setitem(METHODS, 'toy', TOY_METHOD)


def trained(optimizer_class=torch.optim.AdamW, steps: int = 3, **options):
    torch.manual_seed(0)
    model = ToyModel(ToyConfig(noise=0.0))
    optimizer = optimizer_class(model.parameters(), lr=0.01, **options)
    for _ in range(steps):
        x = torch.randn(8, 4)
        loss, _ = model({'x': x, 'y': x.sum(1)})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def one_more_step(model, optimizer) -> torch.Tensor:
    x = torch.ones(8, 4)
    loss, _ = model({'x': x, 'y': x.sum(1)})
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize('optimizer_class, options', [(torch.optim.AdamW, {}), (torch.optim.SGD, {'momentum': 0.9}),
                                                      (torch.optim.Adam, {'amsgrad': True})])
def test_optimizer_state_round_trips_through_safetensors_and_json(optimizer_class, options):
    model, optimizer = trained(optimizer_class, **options)
    tensors, rest = optimizer_state_to_tensors(optimizer.state_dict())
    stored_tensors = safetensors.torch.load(safetensors.torch.save(tensors))
    stored_rest = json.loads(json.dumps(rest))

    copy = ToyModel(ToyConfig(noise=0.0))
    copy.load_state_dict(model.state_dict())
    copy_optimizer = optimizer_class(copy.parameters(), lr=0.5, **options)
    copy_optimizer.load_state_dict(optimizer_state_from_tensors(stored_tensors, stored_rest))
    assert copy_optimizer.param_groups[0]['lr'] == 0.01
    assert torch.equal(one_more_step(copy, copy_optimizer), one_more_step(model, optimizer))


def test_save_points_latest_at_the_newest_and_keeps_the_last_k(tmp_path):
    model, optimizer = trained()
    for step in (10, 20, 30, 40):
        save_training_checkpoint(tmp_path, step, model, optimizer, code_version='test', keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['latest', 'step_000000030', 'step_000000040']
    assert latest_checkpoint(tmp_path) == tmp_path / 'step_000000040'
    assert checkpoint_step(latest_checkpoint(tmp_path)) == 40


def test_checkpoint_loads_back_and_its_model_file_is_a_model_checkpoint(tmp_path):
    model, optimizer = trained()
    saved_weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    saved = save_training_checkpoint(tmp_path, 7, model, optimizer, code_version='v-test', keep_last=1)
    assert sorted(p.name for p in saved.iterdir()) == ['model.safetensors', 'optimizer.safetensors',
                                                       'train_state.json']

    restored, restored_optimizer = trained(steps=0)
    assert load_training_checkpoint(saved, restored, restored_optimizer) == 7
    assert torch.equal(one_more_step(restored, restored_optimizer), one_more_step(model, optimizer))
    deployed, header = load_checkpoint(saved / 'model.safetensors', method='toy', device='cpu')
    assert (header.step, header.code_version) == (7, 'v-test')
    assert all(torch.equal(tensor, saved_weights[name]) for name, tensor in deployed.state_dict().items())


def test_a_failed_write_leaves_the_previous_checkpoint_in_place(tmp_path, monkeypatch):
    model, optimizer = trained()
    save_training_checkpoint(tmp_path, 1, model, optimizer, code_version='test', keep_last=3)

    def disk_full(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(checkpoints, 'write_atomic', disk_full)
    with pytest.raises(OSError, match='No space left'):
        save_training_checkpoint(tmp_path, 2, model, optimizer, code_version='test', keep_last=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['latest', 'step_000000001']
    assert checkpoint_step(latest_checkpoint(tmp_path)) == 1


def test_saving_the_step_latest_already_holds_rewrites_nothing(tmp_path):
    model, optimizer = trained()
    first = save_training_checkpoint(tmp_path, 5, model, optimizer, code_version='test', keep_last=3)
    written = (first / 'model.safetensors').stat().st_mtime_ns
    one_more_step(model, optimizer)
    assert save_training_checkpoint(tmp_path, 5, model, optimizer, code_version='test', keep_last=3) == first
    assert (first / 'model.safetensors').stat().st_mtime_ns == written


def test_leftovers_of_a_killed_save_are_deleted(tmp_path):
    model, optimizer = trained()
    save_training_checkpoint(tmp_path, 5, model, optimizer, code_version='test', keep_last=3)
    (tmp_path / '.step_000000006.123.tmp').mkdir()
    (tmp_path / 'step_000000006').mkdir()  # renamed into place, killed before `latest` moved
    delete_unfinished_checkpoints(tmp_path, latest_step=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['latest', 'step_000000005']


def test_no_checkpoint_yet(tmp_path):
    assert latest_checkpoint(tmp_path / 'checkpoints') is None
