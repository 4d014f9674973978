"""Checkpoints: round trip through safetensors + header, and each refusal."""

from __future__ import annotations

import os
import pickle

import pytest
import safetensors.torch
import torch

from ssl_robot.models import (BetaVAE, BetaVAEConfig, CheckpointError, TCN, TCNConfig, load_checkpoint,
                              load_weights, read_checkpoint_header, save_checkpoint)

SMALL_TCN = TCNConfig(image_size=16, encoder_widths=(8, 16), embedding_dim=6, margin=0.3)
SMALL_VAE = BetaVAEConfig(image_size=16, encoder_widths=(8, 16), decoder_widths=(16, 8), latent_dim=4)


def trained_tcn() -> TCN:
    torch.manual_seed(0)
    return TCN(SMALL_TCN)


def test_round_trip_restores_config_weights_and_header(tmp_path):
    model = trained_tcn()
    path = save_checkpoint(tmp_path / 'tcn.safetensors', model, step=42, code_version='0.1.0+abc')
    loaded, header = load_checkpoint(path, method='tcn', device='cpu')
    assert (header.method, header.step, header.code_version) == ('tcn', 42, '0.1.0+abc')
    assert loaded.config == SMALL_TCN and not loaded.training
    images = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(loaded.embed(images), model.embed(images))
    assert read_checkpoint_header(path) == header
    assert [p.name for p in tmp_path.iterdir()] == ['tcn.safetensors']  # no temporary file left


def test_load_weights_into_an_existing_model(tmp_path):
    path = save_checkpoint(tmp_path / 'tcn.safetensors', trained_tcn(), step=1, code_version='v')
    torch.manual_seed(1)
    fresh = TCN(SMALL_TCN)
    assert load_weights(path, fresh).step == 1
    torch.testing.assert_close(fresh.state_dict(), trained_tcn().state_dict())


def test_a_checkpoint_of_another_method_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / 'vae.safetensors', BetaVAE(SMALL_VAE), step=0, code_version='v')
    with pytest.raises(CheckpointError, match=rf"{path} holds a 'betavae' checkpoint, not 'tcn'"):
        load_checkpoint(path, method='tcn')
    with pytest.raises(CheckpointError, match="holds a 'betavae' checkpoint, not 'tcn'"):
        load_weights(path, trained_tcn())


def test_a_checkpoint_of_another_shape_is_refused_naming_the_tensors(tmp_path):
    path = save_checkpoint(tmp_path / 'tcn.safetensors', trained_tcn(), step=0, code_version='v')
    wider = TCN(TCNConfig(image_size=16, encoder_widths=(8, 16), embedding_dim=9))
    with pytest.raises(CheckpointError, match=r"tcn.safetensors does not fit this 'tcn' model: "
                                              r"encoder.project.weight has shape \(6, 256\) in the file, \(9, 256\) "
                                              r"in the model; encoder.project.bias .*embedding_dim"):
        load_weights(path, wider)
    deeper = TCN(TCNConfig(image_size=16, encoder_widths=(8, 16, 16), embedding_dim=6))
    with pytest.raises(CheckpointError, match=r"missing tensors \['encoder.encoder.layers.6.bias'"):
        load_weights(path, deeper)


def test_a_pickle_is_never_unpickled(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ('touch ' + str(tmp_path / 'pwned'),))

    path = tmp_path / 'model.pt'
    path.write_bytes(pickle.dumps({'state_dict': Payload()}))
    with pytest.raises(CheckpointError, match=r'model.pt is not a safetensors checkpoint .* pickled files such as '
                                              r'torch .pt are refused'):
        load_checkpoint(path)
    torch.save(trained_tcn().state_dict(), path)
    with pytest.raises(CheckpointError, match=r'not a safetensors checkpoint but a pickle \(zip\); pickled files'):
        load_checkpoint(path)
    assert not (tmp_path / 'pwned').exists()


def test_a_plain_safetensors_file_is_not_taken_for_a_checkpoint(tmp_path):
    path = tmp_path / 'weights.safetensors'
    safetensors.torch.save_file(trained_tcn().state_dict(), path, metadata={'method': 'tcn'})
    with pytest.raises(CheckpointError, match=r"not an ssl_robot checkpoint: its header lacks \['format', 'config'"):
        load_checkpoint(path)


def test_a_header_this_code_cannot_build_is_refused(tmp_path):
    path = tmp_path / 'future.safetensors'
    metadata = {'format': 'ssl_robot.checkpoint/1', 'method': 'tcn', 'config': '{"attention_heads": 4}',
                'code_version': '9.0', 'step': '0'}
    safetensors.torch.save_file(trained_tcn().state_dict(), path, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"future.safetensors: its header does not describe a model this code "
                                              r"can build: unknown TCNConfig keys for method 'tcn': "
                                              r"\['attention_heads'\]"):
        load_checkpoint(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.safetensors does not exist'):
        load_checkpoint(tmp_path / 'nothing.safetensors')


def test_saving_replaces_an_existing_checkpoint_whole(tmp_path):
    path = tmp_path / 'tcn.safetensors'
    save_checkpoint(path, trained_tcn(), step=1, code_version='v')
    save_checkpoint(path, trained_tcn(), step=2, code_version='v')
    assert read_checkpoint_header(path).step == 2
    with pytest.raises(ValueError, match='step must be an int >= 0, got -1'):
        save_checkpoint(path, trained_tcn(), step=-1, code_version='v')
    assert read_checkpoint_header(path).step == 2


@pytest.mark.parametrize('content, problem', [
    (b'', 'truncated to 0 bytes, fewer than its 8-byte header length'),
    (b'\x05\x00', 'truncated to 2 bytes'),
    (bytes(range(200, 256)) * 3, r'header length \d+ exceeds the file size \(168 bytes\)'),
    ((10**6).to_bytes(8, 'little') + b'{"a"', r'header length 1000000 exceeds the file size \(12 bytes\); truncated\?'),
    ((4).to_bytes(8, 'little') + b'nope', 'not a safetensors checkpoint, or is corrupt or truncated'),
])
def test_random_or_truncated_bytes_are_not_called_pickled(tmp_path, content, problem):
    path = tmp_path / 'model.safetensors'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=problem) as raised:
        load_checkpoint(path)
    assert 'pickle' not in str(raised.value)


def test_a_truncated_checkpoint_is_named_truncated(tmp_path):
    path = save_checkpoint(tmp_path / 'tcn.safetensors', trained_tcn(), step=1, code_version='v')
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match='tcn.safetensors is not a safetensors checkpoint, or is corrupt or '
                                              'truncated') as raised:
        load_checkpoint(path)
    assert 'pickle' not in str(raised.value)
