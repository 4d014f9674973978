"""The method registry, config validation across all models, and that each model can learn on a tiny batch."""

from __future__ import annotations

import re

import pytest
import torch

from ssl_robot.models import (METHODS, BetaVAEConfig, CCVAEConfig, Grasp2VecConfig, MultiFrameTCNConfig,
                              SingleViewTCNConfig, TCNConfig, build_model, config_from_dict, config_to_dict,
                              method_of)
from ssl_robot.models.registry import (GRASP2VEC_FAMILY, TCN_FAMILY, VAE_FAMILY, methods_of, method_spec,
                                       require_family)

SIZE = 16
TINY = {
    'tcn': dict(image_size=SIZE, encoder_widths=(8, 16), embedding_dim=8),
    'svtcn': dict(image_size=SIZE, encoder_widths=(8, 16), embedding_dim=8),
    'mftcn': dict(image_size=SIZE, encoder_widths=(8, 16), embedding_dim=8, num_frames=2, temporal_channels=8),
    'grasp2vec': dict(image_size=SIZE, encoder_widths=(8, 16), embedding_dim=8),
    'betavae': dict(image_size=SIZE, encoder_widths=(8, 16), decoder_widths=(16, 8), latent_dim=4),
    'ccvae': dict(image_size=SIZE, encoder_widths=(8, 16), decoder_widths=(16, 8), latent_dim=4, context_dim=4),
}


def tiny_batch(method: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def images(*leading: int) -> torch.Tensor:
        return torch.rand(*leading, 3, SIZE, SIZE, generator=generator)

    times, episode = torch.tensor([0, 1, 20, 21, 40, 41]), torch.tensor([0, 0, 0, 0, 1, 1])
    return {
        'tcn': lambda: {'frames': images(6, 2), 'times': times, 'episode': episode},
        'svtcn': lambda: {'frames': images(6), 'times': times, 'episode': episode},
        'mftcn': lambda: {'clips': images(6, 2, 2), 'times': times, 'episode': episode},
        'grasp2vec': lambda: {'pre': images(6), 'post': images(6), 'object': images(6)},
        'betavae': lambda: {'state': images(6)},
        'ccvae': lambda: {'state': images(6), 'context': images(6)},
    }[method]()


def test_registry_names_every_method():
    assert sorted(METHODS) == ['betavae', 'ccvae', 'grasp2vec', 'mftcn', 'svtcn', 'tcn']


def test_every_list_of_methods_comes_from_the_families_and_views():
    assert methods_of(TCN_FAMILY) == ('tcn', 'svtcn', 'mftcn')
    assert methods_of(VAE_FAMILY) == ('betavae', 'ccvae')
    assert methods_of(GRASP2VEC_FAMILY) == ('grasp2vec',)
    assert methods_of() == tuple(METHODS)
    assert methods_of(TCN_FAMILY, multi_view=True) == ('tcn', 'mftcn')
    assert methods_of(multi_view=False) == ('svtcn', 'betavae', 'ccvae', 'grasp2vec')
    assert [m for m in METHODS if method_spec(m).clips] == ['mftcn']
    assert [m for m in METHODS if method_spec(m).needs_context] == ['ccvae']


def test_an_unknown_family_or_a_method_of_another_family_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown method family 'gan'"):
        methods_of('gan')
    with pytest.raises(ValueError, match=r"method 'ccvae' does not embed frames: expected one of \['tcn', 'svtcn', "
                                         r"'mftcn'\]"):
        require_family('ccvae', TCN_FAMILY, 'embed frames')
    assert require_family('mftcn', TCN_FAMILY, 'embed frames') is METHODS['mftcn']


@pytest.mark.parametrize('method', sorted(METHODS))
def test_a_few_steps_reduce_the_loss(method):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = build_model(method, TINY[method])
    assert method_of(model) == method
    batch = tiny_batch(method, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, metrics = model(batch)
        assert metrics['loss'] == pytest.approx(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize('method', sorted(METHODS))
def test_gradients_reach_every_parameter(method):
    torch.manual_seed(0)
    model = build_model(method, TINY[method])
    loss, _ = model(tiny_batch(method, torch.Generator().manual_seed(0)))
    loss.backward()
    without_gradient = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_gradient == []


def test_config_from_dict_refuses_unknown_keys_by_name():
    with pytest.raises(ValueError, match=r"unknown TCNConfig keys for method 'tcn': \['marg', 'windw'\]"):
        config_from_dict('tcn', {'marg': 0.1, 'windw': 3, 'margin': 0.3})


def test_config_from_dict_accepts_lists_and_round_trips():
    config = config_from_dict('betavae', {'encoder_widths': [8, 16], 'decoder_widths': [16, 8], 'image_size': 16})
    assert config.encoder_widths == (8, 16)
    assert config_from_dict('betavae', config_to_dict(config)) == config


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match=r"unknown method 'simclr'"):
        config_from_dict('simclr', {})
    with pytest.raises(TypeError, match="'tcn' takes a TCNConfig, got BetaVAEConfig"):
        build_model('tcn', BetaVAEConfig())


@pytest.mark.parametrize('config_class, values, message', [
    (TCNConfig, dict(margin=-1), 'TCNConfig.margin must be > 0, got -1'),
    (TCNConfig, dict(mining='hard'), "TCNConfig.mining must be one of ['all', 'semi_hard'], got 'hard'"),
    (TCNConfig, dict(loss='infonce'), "TCNConfig.loss must be one of ['triplet', 'npairs'], got 'infonce'"),
    (TCNConfig, dict(negative_window=-2), 'TCNConfig.negative_window must be >= 0, got -2'),
    (TCNConfig, dict(negative_window=2.5), 'TCNConfig.negative_window must be an int, got 2.5'),
    (TCNConfig, dict(embedding_dim=0), 'TCNConfig.embedding_dim must be >= 1, got 0'),
    (TCNConfig, dict(margin='0.2'), "TCNConfig.margin must be a number, got '0.2'"),
    (TCNConfig, dict(image_size=60), 'TCNConfig.image_size must be divisible by 2 ** len(encoder_widths) = 16'),
    (TCNConfig, dict(encoder_widths=()), 'TCNConfig.encoder_widths must be a non-empty sequence of ints'),
    (TCNConfig, dict(encoder_widths=(8, 0)), 'TCNConfig.encoder_widths must hold ints >= 1, got [8, 0]'),
    (TCNConfig, dict(channels=True), 'TCNConfig.channels must be an int, got True'),
    (SingleViewTCNConfig, dict(positive_radius=4, negative_radius=3),
     'SingleViewTCNConfig.negative_radius must be >= 4, got 3'),
    (MultiFrameTCNConfig, dict(num_frames=0), 'MultiFrameTCNConfig.num_frames must be >= 1, got 0'),
    (MultiFrameTCNConfig, dict(stride=0), 'MultiFrameTCNConfig.stride must be >= 1, got 0'),
    (Grasp2VecConfig, dict(l2_penalty=-0.1), 'Grasp2VecConfig.l2_penalty must be >= 0, got -0.1'),
    (BetaVAEConfig, dict(beta=-1.0), 'BetaVAEConfig.beta must be >= 0, got -1.0'),
    (BetaVAEConfig, dict(likelihood='laplace'), "BetaVAEConfig.likelihood must be one of"),
    (BetaVAEConfig, dict(decoder_widths=(8,) * 7), 'BetaVAEConfig.image_size must be divisible by 2 ** '
                                                   'len(decoder_widths) = 128'),
    (CCVAEConfig, dict(context_dim=0), 'CCVAEConfig.context_dim must be >= 1, got 0'),
    (CCVAEConfig, dict(latent_dim=0), 'CCVAEConfig.latent_dim must be >= 1, got 0'),
    (CCVAEConfig, dict(context_recon_weight=-2), 'CCVAEConfig.context_recon_weight must be >= 0, got -2'),
])
def test_config_validation_names_the_bad_value(config_class, values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_class(**values)


def test_configs_scale_up_to_larger_images():
    config = TCNConfig(image_size=128, encoder_widths=(8, 8, 8, 8, 8))
    assert config.feature_size == 4
    model = build_model('tcn', config)
    assert model.embed(torch.rand(2, 3, 128, 128)).shape == (2, config.embedding_dim)
