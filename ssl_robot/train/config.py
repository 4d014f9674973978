"""The training config: TrainConfig with the method's model config and a DataConfig (ssl_robot.data.config) nested
in it, read from YAML with command-line overrides (ssl_robot.typed_config).

    method: tcn            # optional in the file; must match the command's METHOD
    steps: 20000
    lr: 3.0e-4
    model: {embedding_dim: 32, margin: 0.2}     # fields of the method's config class in ssl_robot.models
    data: {cameras: [/cam0/image_raw, /cam1/image_raw], episodes_per_batch: 4}

Overrides are `key.sub=value`, the value read as YAML: `steps=500`, `model.margin=0.5`, `data.cameras=[/a, /b]`,
`max_minutes=null`. Unknown keys and values of the wrong type are errors naming the key, the value and the file or
override they came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ssl_robot.data.config import DataConfig
from ssl_robot.train.errors import TrainError
from ssl_robot.typed_config import (ConfigError, build, convert_fields, parse_override, require_at_least, to_plain,
                                    with_override)

# DataConfig fields that say what the model also says, and the model config fields they mirror (first one present).
# Left null they take the model's value, so the loader and the model can not disagree.
MODEL_FIELDS_MIRRORED_BY_DATA = {
    'image_size': ('image_size',),
    'clip_frames': ('num_frames',),
    'clip_stride': ('stride',),
    'positive_window': ('positive_radius',),
    'negative_window': ('negative_window', 'negative_radius'),
}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run. Steps count optimizer updates; batch_size is per process, so under torchrun each update
    sees batch_size * WORLD_SIZE examples."""

    method: str
    """The model to train: a key of ssl_robot.models.registry (tcn, svtcn, mftcn, grasp2vec, betavae, ccvae)."""
    seed: int = 0
    """Seeds model initialisation, every step's randomness and the data stream (with the rank and resume step)."""
    steps: int = 100_000
    """Total optimizer steps; rerunning a finished run with more steps continues it."""
    batch_size: int = 32
    """Examples per batch, per process."""
    lr: float = 3e-4
    """AdamW learning rate."""
    lr_schedule: Literal['constant', 'cosine'] = 'constant'
    """'constant': lr throughout. 'cosine': lr decayed along half a cosine from lr at step 0 to 0 at `steps`
    (SGDR, Loshchilov & Hutter 2017, without restarts), so that the final weights settle rather than being one
    snapshot of a noisy walk. A function of the step alone, so resuming keeps it; a run stopped early by
    max_minutes ends before the decay does."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    grad_clip: float = 1.0
    """Largest global L2 norm of the gradients before a step; 0 turns clipping off."""
    log_every: int = 50
    """Steps between TensorBoard scalars (averaged over processes)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints; 0: only the time-based and final ones."""
    checkpoint_every_s: float = 900.0
    """Seconds between checkpoints, so a slow run loses at most this much work to a crash; 0 turns it off."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    num_workers: int = 2
    """DataLoader worker processes per training process; 0 reads data in the training process."""
    device: Literal['auto', 'cpu', 'cuda'] = 'auto'
    """'auto': CUDA when available, else the CPU. Under torchrun each process takes GPU LOCAL_RANK."""
    max_minutes: float | None = None
    """Wall-clock budget of one invocation: past it, training checkpoints and stops cleanly. null: no budget."""
    model: Any
    """The method's model config (a dataclass of ssl_robot.models)."""
    data: DataConfig = field(default_factory=DataConfig)
    """How batches are made from the bags."""

    def __post_init__(self) -> None:
        convert_fields(self)
        if not dataclasses.is_dataclass(self.model):
            raise ValueError(f'TrainConfig.model must be a model config dataclass, got {self.model!r}')
        for name in ('steps', 'batch_size', 'log_every', 'keep_checkpoints'):
            require_at_least(self, name, 1)
        for name in ('seed', 'weight_decay', 'grad_clip', 'checkpoint_every', 'checkpoint_every_s', 'num_workers'):
            require_at_least(self, name, 0)
        if not self.lr > 0:
            raise ValueError(f'TrainConfig.lr must be > 0, got {self.lr}')
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f'TrainConfig.max_minutes must be > 0 or null, got {self.max_minutes}')
        if self.batch_size % self.data.episodes_per_batch:
            raise ValueError(f'data.episodes_per_batch ({self.data.episodes_per_batch}) must divide batch_size '
                             f'({self.batch_size})')
        object.__setattr__(self, 'data', _data_matching_model(self.data, self.model))


def _data_matching_model(data: DataConfig, model: Any) -> DataConfig:
    filled = {}
    for data_name, model_names in MODEL_FIELDS_MIRRORED_BY_DATA.items():
        model_name = next((name for name in model_names if hasattr(model, name)), None)
        if model_name is None:
            continue
        data_value, model_value = getattr(data, data_name), getattr(model, model_name)
        if data_value is None:
            filled[data_name] = model_value
        elif data_value != model_value:
            raise ValueError(f'data.{data_name} is {data_value} but model.{model_name} is {model_value}: the loader '
                             f'must make what the model takes; set model.{model_name} only')
    return dataclasses.replace(data, **filled)


def config_from_dict(method: str, model_config_class: type, data: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from plain values (a YAML document); the `model` section builds model_config_class."""
    if 'method' in data and data['method'] != method:
        raise TrainError(f'the config is for method {data["method"]!r}, but training {method!r} was asked for')
    values = dict(data)
    model = build(model_config_class, values.pop('model', None) or {}, 'model')
    return build(TrainConfig, {**values, 'method': method, 'model': model})


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a TrainError names the file if it is missing or not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise TrainError(f'cannot read config {path}: {err.strerror}') from err
    except yaml.YAMLError as err:
        raise TrainError(f'{path} is not valid YAML: {err}') from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainError(f'{path} must hold a mapping of config keys, got {type(data).__name__}')
    return data


def load_train_config(method: str, model_config_class: type, path: Path | None = None,
                      overrides: Sequence[str] = ()) -> TrainConfig:
    """The config of path (defaults where absent), then each `key.sub=value` override in order."""
    values = read_yaml_mapping(path) if path is not None else {}
    try:
        config = config_from_dict(method, model_config_class, values)
    except (ConfigError, TrainError) as err:
        raise TrainError(f'{path}: {err}' if path is not None else str(err)) from None
    for override in overrides:
        values = with_override(values, *parse_override(override))
        try:
            config = config_from_dict(method, model_config_class, values)
        except (ConfigError, TrainError) as err:
            raise TrainError(f'--set {override}: {err}') from None
    return config


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML that load_train_config reads back to an equal config."""
    return yaml.safe_dump(to_plain(config), sort_keys=False)
