"""Method names -> (config class, model class), for the training CLI and checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import nn

from .grasp2vec import Grasp2Vec, Grasp2VecConfig
from .mftcn import MultiFrameTCN, MultiFrameTCNConfig
from .tcn import TCN, SingleViewTCN, SingleViewTCNConfig, TCNConfig
from .vae import CCVAE, BetaVAE, BetaVAEConfig, CCVAEConfig


class Method(NamedTuple):
    config_class: type
    model_class: type[nn.Module]


METHODS: dict[str, Method] = {
    'tcn': Method(TCNConfig, TCN),
    'svtcn': Method(SingleViewTCNConfig, SingleViewTCN),
    'mftcn': Method(MultiFrameTCNConfig, MultiFrameTCN),
    'grasp2vec': Method(Grasp2VecConfig, Grasp2Vec),
    'betavae': Method(BetaVAEConfig, BetaVAE),
    'ccvae': Method(CCVAEConfig, CCVAE),
}


def method_spec(method: str) -> Method:
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f'unknown method {method!r}: known methods are {sorted(METHODS)}') from None


def config_from_dict(method: str, values: Mapping[str, Any]) -> Any:
    """The method's config built from `values` (e.g. parsed YAML/JSON), which may leave fields at their defaults.
    Unknown keys are refused by name, since a misspelt field would otherwise silently keep its default."""
    config_class = method_spec(method).config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f'unknown {config_class.__name__} keys for method {method!r}: {unknown}; '
                         f'known keys are {sorted(fields)}')
    return config_class(**values)


def build_model(method: str, config: Any) -> nn.Module:
    """A freshly initialised model of the method; config is its config object or a dict for config_from_dict."""
    spec = method_spec(method)
    if isinstance(config, Mapping):
        config = config_from_dict(method, config)
    if type(config) is not spec.config_class:
        raise TypeError(f'method {method!r} takes a {spec.config_class.__name__}, got {type(config).__name__}')
    return spec.model_class(config)


def method_of(model: nn.Module) -> str:
    """The method name of a model instance."""
    for name, spec in METHODS.items():
        if type(model) is spec.model_class:
            return name
    raise ValueError(f'{type(model).__name__} is not a registered model: known models are '
                     f'{[spec.model_class.__name__ for spec in METHODS.values()]}')
