"""Method names -> their config and model classes, family and views: the one list every other list of methods is
derived from (methods_of), for the training CLI, the data pipeline, evaluation, inference and checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import nn

from .grasp2vec import Grasp2Vec, Grasp2VecConfig
from .mftcn import MultiFrameTCN, MultiFrameTCNConfig
from .tcn import TCN, SingleViewTCN, SingleViewTCNConfig, TCNConfig
from .vae import CCVAE, BetaVAE, BetaVAEConfig, CCVAEConfig


TCN_FAMILY, VAE_FAMILY, GRASP2VEC_FAMILY = 'tcn', 'vae', 'grasp2vec'
FAMILIES = (TCN_FAMILY, VAE_FAMILY, GRASP2VEC_FAMILY)
"""Method families: the TCNs embed camera frames (the embedding node, the imitation reward), the VAEs encode scenes
and imagine goals (the goal node, the latent-goal reward, RL), Grasp2Vec embeds scenes and grasped objects."""


class Method(NamedTuple):
    config_class: type
    model_class: type[nn.Module]
    family: str
    """One of FAMILIES (a test's toy method may have its own)."""
    multi_view: bool = False
    """Whether a sample holds synchronized frames of several cameras (config.data.views), not one camera's."""
    clips: bool = False
    """Whether the model embeds clips of consecutive frames rather than single frames."""
    needs_context: bool = False
    """Whether it encodes and imagines under a context image, the first frame of the episode (CC-VAE), rather than
    from the frame or the prior alone."""


METHODS: dict[str, Method] = {
    'tcn': Method(TCNConfig, TCN, TCN_FAMILY, multi_view=True),
    'svtcn': Method(SingleViewTCNConfig, SingleViewTCN, TCN_FAMILY),
    'mftcn': Method(MultiFrameTCNConfig, MultiFrameTCN, TCN_FAMILY, multi_view=True, clips=True),
    'betavae': Method(BetaVAEConfig, BetaVAE, VAE_FAMILY),
    'ccvae': Method(CCVAEConfig, CCVAE, VAE_FAMILY, needs_context=True),
    'grasp2vec': Method(Grasp2VecConfig, Grasp2Vec, GRASP2VEC_FAMILY),
}


def methods_of(family: str | None = None, *, multi_view: bool | None = None) -> tuple[str, ...]:
    """The registered method names of a family (all families if None), in registry order, optionally only those
    whose samples are (or are not) multi-view."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f'unknown method family {family!r}: known families are {list(FAMILIES)}')
    return tuple(name for name, spec in METHODS.items()
                 if (family is None or spec.family == family)
                 and (multi_view is None or spec.multi_view == multi_view))


def require_family(method: str, family: str, what: str) -> Method:
    """The method's spec if it is of the family; ValueError naming the method, what the family does and its
    members otherwise."""
    spec = method_spec(method)
    if spec.family != family:
        raise ValueError(f'method {method!r} does not {what}: expected one of {list(methods_of(family))}')
    return spec


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
