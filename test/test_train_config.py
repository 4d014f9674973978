"""TrainConfig from YAML and overrides: precedence, round trip, and errors that name the key, value and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_robot.data.config import DataConfig
from ssl_robot.models.mftcn import MultiFrameTCNConfig
from ssl_robot.models.tcn import SingleViewTCNConfig, TCNConfig
from ssl_robot.train.config import TrainConfig, config_to_yaml, load_train_config
from ssl_robot.train.errors import TrainError
from ssl_robot.typed_config import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'train.yaml'
    path.write_text(text)
    return path


def test_defaults_then_file_then_overrides_in_order(tmp_path):
    path = write(tmp_path, 'steps: 500\nlr: 1.0e-3\nmodel: {margin: 0.5}\ndata: {cameras: [/cam0, /cam1]}\n')
    config = load_train_config('tcn', TCNConfig, path, ['lr=2e-4', 'model.embedding_dim=8', 'lr=5e-4'])
    assert config.steps == 500
    assert config.lr == 5e-4
    assert config.model == TCNConfig(margin=0.5, embedding_dim=8)
    assert config.data.cameras == ('/cam0', '/cam1')
    assert config.batch_size == TrainConfig.__dataclass_fields__['batch_size'].default


def test_values_from_strings_and_lists_are_converted_exactly():
    config = load_train_config('tcn', TCNConfig, None, ['steps=1e3', 'max_minutes=90', 'model.encoder_widths=[8, 16]',
                                                        "lr='0.01'", 'checkpoint_every=2.0'])
    assert (config.steps, config.max_minutes, config.lr, config.checkpoint_every) == (1000, 90.0, 0.01, 2)
    assert isinstance(config.steps, int) and isinstance(config.max_minutes, float)
    assert config.model.encoder_widths == (8, 16)


def test_resolved_yaml_reads_back_to_an_equal_config(tmp_path):
    config = load_train_config('mftcn', MultiFrameTCNConfig, None,
                               ['seed=7', 'max_minutes=1.5', 'data.cameras=[/a, /b]', 'model.num_frames=4'])
    assert load_train_config('mftcn', MultiFrameTCNConfig, write(tmp_path, config_to_yaml(config))) == config


def test_data_fields_left_null_take_the_models_values():
    data = load_train_config('mftcn', MultiFrameTCNConfig, None, ['model.num_frames=5', 'model.stride=3']).data
    assert (data.image_size, data.clip_frames, data.clip_stride, data.negative_window) == (64, 5, 3, 10)
    assert data.positive_window is None  # mftcn has no positive radius
    svtcn = load_train_config('svtcn', SingleViewTCNConfig, None, ['model.negative_radius=12']).data
    assert (svtcn.positive_window, svtcn.negative_window) == (1, 12)


@pytest.mark.parametrize('override, message', [
    ('stepz=3', "unknown key 'stepz'"),
    ('data.imagesize=3', "unknown key 'data.imagesize'"),
    ('model.marginn=3', "unknown key 'model.marginn'"),
    ('steps=many', "steps must be an int, got 'many'"),
    ('steps=1.5', 'steps must be an int, got 1.5'),
    ('steps=true', 'steps must be an int, got True'),
    ('device=gpu', "device must be 'auto' or 'cpu' or 'cuda', got 'gpu'"),
    ('lr_schedule=linear', "lr_schedule must be 'constant' or 'cosine', got 'linear'"),
    ('data.cameras=3', "data.cameras must be a list of strings or 'auto', got 3"),
    ('data.cameras=[/a, 3]', "data.cameras must be a list of strings or 'auto', got ['/a', 3]"),
    ('steps=0', 'TrainConfig.steps must be >= 1, got 0'),
    ('model.margin=-1', 'TCNConfig.margin must be > 0'),
    ('batch_size=30', 'episodes_per_batch (4) must divide batch_size (30)'),
    ('data.image_size=32', 'data.image_size is 32 but model.image_size is 64'),
    ('data.val_fraction=1', 'val_fraction must be in [0, 1), got 1.0'),
    ('data.cameras=[/cam0]', "DataConfig.views is 2 but cameras names only 1: ['/cam0']"),
])
def test_bad_override_names_the_override_the_key_and_the_value(override, message):
    with pytest.raises(TrainError) as error:
        load_train_config('tcn', TCNConfig, None, [override])
    assert str(error.value).startswith(f'--set {override}: ')
    assert message in str(error.value)


@pytest.mark.parametrize('override', ['steps', 'a..b=1', '=3', 'steps=[1'])
def test_malformed_override_is_named(override):
    with pytest.raises(ConfigError, match='override'):
        load_train_config('tcn', TCNConfig, None, [override])


@pytest.mark.parametrize('text, message', [
    ('steps: 10\nbatchsize: 8\n', "unknown key 'batchsize'"),
    ('data: {cameras: auto, fps: 30}\n', "unknown key 'data.fps'"),
    ('model: {margin: big}\n', "model.margin must be a number, got 'big'"),
    ('method: betavae\n', "the config is for method 'betavae', but training 'tcn' was asked for"),
    ('- steps\n', 'must hold a mapping of config keys'),
    ('steps: [1\n', 'is not valid YAML'),
])
def test_bad_file_names_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TrainError) as error:
        load_train_config('tcn', TCNConfig, path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_missing_file_is_a_train_error(tmp_path):
    with pytest.raises(TrainError, match='cannot read config .*nope.yaml'):
        load_train_config('tcn', TCNConfig, tmp_path / 'nope.yaml')


def test_configs_made_in_code_are_checked_too():
    with pytest.raises(ConfigError, match='DataConfig.views must be an int, got 2.5'):
        DataConfig(views=2.5)
    with pytest.raises(ValueError, match='must be a model config dataclass'):
        TrainConfig(method='tcn', model={'margin': 1})
