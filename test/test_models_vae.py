"""RIG's beta-VAE and the CC-VAE: encodings, decodings, goal sampling, rewards and the context pathway."""

from __future__ import annotations

import pytest
import torch

from ssl_robot.models import CCVAE, BetaVAE, BetaVAEConfig, CCVAEConfig
from ssl_robot.models.losses import beta_vae_loss, ccvae_loss, foreground_pixels

SMALL = dict(image_size=16, encoder_widths=(8, 16), decoder_widths=(16, 8), latent_dim=4)


def images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def vae() -> BetaVAE:
    torch.manual_seed(0)
    return BetaVAE(BetaVAEConfig(**SMALL, beta=3.0))


@pytest.fixture
def ccvae() -> CCVAE:
    torch.manual_seed(0)
    return CCVAE(CCVAEConfig(**SMALL, context_dim=3, context_recon_weight=2.0))


def test_encode_is_the_deterministic_posterior_mean(vae):
    states = images(3)
    means = vae.encode(states)
    assert means.shape == (3, 4) and not means.requires_grad
    torch.testing.assert_close(vae.encode(states), means)
    torch.testing.assert_close(means, vae.encoder(states)[:, :4].detach())


def test_forward_is_the_beta_vae_loss_with_a_reparameterized_sample(vae):
    states = images(3)
    torch.manual_seed(5)
    loss, metrics = vae({'state': states})
    mean, log_variance = vae.encoder(states).chunk(2, dim=-1)
    torch.manual_seed(5)
    sample = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
    want, reconstruction, kl = beta_vae_loss(vae.decoder(sample), states, mean, log_variance, 3.0, 'bernoulli')
    torch.testing.assert_close(loss, want)
    assert metrics['kl'] == pytest.approx(kl.item()) and metrics['reconstruction'] == pytest.approx(
        reconstruction.item())


def test_decode_and_sample_goals(vae):
    goals = vae.sample_goals(5, generator=torch.Generator().manual_seed(3))
    assert goals.shape == (5, 4)
    torch.testing.assert_close(goals, vae.sample_goals(5, generator=torch.Generator().manual_seed(3)))
    decoded = vae.decode(goals)
    assert decoded.shape == (5, 3, 16, 16) and decoded.min() >= 0 and decoded.max() <= 1


def test_reward_is_minus_the_latent_distance_to_goal_latents_or_images(vae):
    states, goal_images = images(3, 1), images(3, 2)
    goal_latents = vae.encode(goal_images)
    want = -(vae.encode(states) - goal_latents).norm(dim=-1)
    torch.testing.assert_close(vae.reward(states, goal_latents), want)
    torch.testing.assert_close(vae.reward(states, goal_images), want)
    torch.testing.assert_close(vae.reward(states, vae.encode(states)), torch.zeros(3))
    with pytest.raises(ValueError, match=r'goals must be latents \(N, 4\) or images \(N, C, H, W\), got \(3, 7\)'):
        vae.reward(states, torch.zeros(3, 7))
    with pytest.raises(ValueError, match='states, goals must pair up row by row, got rows states: 3, goals: 2'):
        vae.reward(states, goal_latents[:2])
    with pytest.raises(ValueError, match=r'latents must have shape \(N, 4\), got \(3, 5\)'):
        vae.decode(torch.zeros(3, 5))


def test_ccvae_context_encoder_shares_no_weights_with_the_state_encoder(ccvae):
    context = {p.data_ptr() for p in ccvae.context_encoder.parameters()}
    state = {p.data_ptr() for p in ccvae.encoder.parameters()}
    assert context and state and not context & state


def forward_by_hand(model, states, contexts):
    """The model's loss and metrics on a batch, and the posterior, context and decoder logits it used, redrawn with
    the same noise."""
    torch.manual_seed(5)
    loss, metrics = model({'state': states, 'context': contexts})
    context = model.context_encoder(contexts)
    mean, log_variance = model.encoder(states, context).chunk(2, dim=-1)
    torch.manual_seed(5)
    sample = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
    return loss, metrics, mean, log_variance, context, model.decoder(torch.cat([sample, context], dim=-1))


def test_ccvae_forward_adds_the_context_reconstruction(ccvae):
    states, contexts = images(3, 1), images(3, 2)
    loss, metrics, mean, log_variance, context, logits = forward_by_hand(ccvae, states, contexts)
    want = ccvae_loss(logits, states, mean, log_variance, ccvae.context_decoder(context), contexts, 5.0, 2.0,
                      'bernoulli')
    torch.testing.assert_close(loss, want[0])
    assert metrics['context_reconstruction'] == pytest.approx(want[3].item())


def test_ccvae_context_skip_decodes_a_change_to_the_context_image():
    torch.manual_seed(0)
    model = CCVAE(CCVAEConfig(**SMALL, context_dim=3, context_skip=True))
    states, contexts = images(3, 1), images(3, 2)
    loss, _, mean, log_variance, context, logits = forward_by_hand(model, states, contexts)
    clamped = contexts.clamp(1e-3, 1 - 1e-3)
    logits = logits + torch.log(clamped / (1 - clamped))
    want = ccvae_loss(logits, states, mean, log_variance, model.context_decoder(context), contexts, 5.0, 1.0,
                      'bernoulli')
    torch.testing.assert_close(loss, want[0])
    # A decoder that adds nothing decodes the context image itself, whatever z is: the unchanged scene is free.
    for layer in model.decoder.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    goals = model.imagine_goals(contexts[:2], 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(goals.images[1, 0], contexts[1].clamp(1e-3, 1 - 1e-3))
    torch.testing.assert_close(model.decode(torch.randn(3, 4), contexts), contexts.clamp(1e-3, 1 - 1e-3))


def test_betavae_foreground_weight_reaches_its_loss():
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(**SMALL, foreground_weight=4.0))
    states = images(3, 1)
    torch.manual_seed(5)
    loss, _ = model({'state': states})
    mean, log_variance = model.encoder(states).chunk(2, dim=-1)
    torch.manual_seed(5)
    logits = model.decoder(mean + torch.randn_like(mean) * (0.5 * log_variance).exp())
    weights = 1.0 + 3.0 * foreground_pixels(states).float()
    torch.testing.assert_close(loss, beta_vae_loss(logits, states, mean, log_variance, 5.0, 'bernoulli', weights)[0])
    with pytest.raises(ValueError, match='BetaVAEConfig.foreground_weight must be > 0, got 0'):
        BetaVAEConfig(**SMALL, foreground_weight=0)
    with pytest.raises(ValueError, match='CCVAEConfig.foreground_weight must be 1 .*, got 2.0'):
        CCVAEConfig(**SMALL, foreground_weight=2)


def test_ccvae_change_weight_reaches_its_loss():
    torch.manual_seed(0)
    model = CCVAE(CCVAEConfig(**SMALL, context_dim=3, change_weight=4.0))
    states, contexts = images(3, 1), images(3, 2)
    loss, _, mean, log_variance, context, logits = forward_by_hand(model, states, contexts)
    want = ccvae_loss(logits, states, mean, log_variance, model.context_decoder(context), contexts, 5.0, 1.0,
                      'bernoulli', change_weight=4.0)
    torch.testing.assert_close(loss, want[0])
    with pytest.raises(ValueError, match='CCVAEConfig.change_weight must be > 0, got 0'):
        CCVAEConfig(**SMALL, change_weight=0)


@pytest.mark.parametrize('value', ['yes', 1])
def test_ccvae_context_skip_must_be_a_bool(value):
    with pytest.raises(ValueError, match=f'CCVAEConfig.context_skip must be true or false, got {value!r}'):
        CCVAEConfig(**SMALL, context_skip=value)


def test_ccvae_encoding_depends_on_the_context(ccvae):
    states = images(2, 1)
    assert not torch.allclose(ccvae.encode(states, images(2, 2)), ccvae.encode(states, images(2, 3)))


def test_ccvae_encoding_in_a_kept_context_equals_encoding_with_the_first_frame(ccvae):
    states, firsts = images(3, 1), images(3, 2)
    torch.testing.assert_close(ccvae.encode_in_context(states, ccvae.context(firsts)), ccvae.encode(states, firsts))
    with pytest.raises(ValueError, match=r'context must have shape \(N, 3\)'):
        ccvae.encode_in_context(states, torch.zeros(3, 4))


def test_imagined_goals_decode_prior_samples_under_each_context(ccvae):
    initial = images(2, 4)
    goals = ccvae.imagine_goals(initial, 3, generator=torch.Generator().manual_seed(0))
    assert goals.latents.shape == (2, 3, 4) and goals.images.shape == (2, 3, 3, 16, 16)
    torch.testing.assert_close(goals.images[1], ccvae.decode(goals.latents[1], initial[[1, 1, 1]]))


def test_ccvae_reward_uses_the_context_for_states_and_goal_images(ccvae):
    states, goal_images, contexts = images(2, 1), images(2, 2), images(2, 3)
    want = -(ccvae.encode(states, contexts) - ccvae.encode(goal_images, contexts)).norm(dim=-1)
    torch.testing.assert_close(ccvae.reward(states, goal_images, contexts), want)
    with pytest.raises(ValueError, match='states, contexts must pair up row by row, got rows states: 2, contexts: 1'):
        ccvae.reward(states, goal_images, contexts[:1])
