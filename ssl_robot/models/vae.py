"""The beta-VAE of RIG (Nair et al. 2018, arXiv 1807.04742) and the context-conditioned CC-VAE (Nair et al. 2019,
arXiv 1910.11670): latent state encodings, goal sampling and latent-distance rewards for goal-conditioned RL.

Batches, images float in [0, 1], (B, C, H, W) each:
  BetaVAE: {'state': s}
  CCVAE:   {'state': s, 'context': s0}, s0 being the first observation of the episode s comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import (ImageEncoderConfig, require_choice, require_float, require_image_size_divisible, require_int,
                     require_widths)
from .encoders import ConvDecoder, ImageVectorEncoder, check_images, check_same_rows, inference, require_keys
from .losses import beta_vae_loss, ccvae_loss, foreground_pixels, up_weighted

LIKELIHOOD_CHOICES = ('bernoulli', 'gaussian')
CONTEXT_SKIP_EPS = 1e-3
"""Context pixels are clamped to [eps, 1 - eps] before their logit (about -6.9 to 6.9), so that a black or white s0
pixel stays a finite logit the decoder can still move."""


@dataclass
class BetaVAEConfig(ImageEncoderConfig):
    """beta-VAE with a Gaussian posterior q(z|s) = N(mu(s), sigma(s)^2) and a conv decoder p(s|z)."""

    latent_dim: int = 16
    """Size of the latent z."""
    beta: float = 5.0
    """Weight of the KL term; above 1 it trades reconstruction for a latent closer to the N(0, I) prior."""
    decoder_widths: tuple[int, ...] = (128, 64, 64, 32)
    """Channels of the decoder: the first is its smallest map's, each further one follows a 2x upsampling."""
    likelihood: str = 'bernoulli'
    """Decoder pixel likelihood: 'bernoulli' (cross-entropy) or 'gaussian' (unit variance, squared error)."""
    foreground_weight: float = 1.0
    """Weight in the reconstruction of the pixels that differ from the batch's per-pixel median image
    (losses.foreground_pixels: the arm, an object, against the tray); 1 is RIG's loss. Small objects such as
    TrayPush's puck are otherwise too few pixels for the latent to keep. The beta-VAE's only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_int(self, 'latent_dim', 1)
        require_float(self, 'beta', positive=False)
        require_widths(self, 'decoder_widths')
        require_choice(self, 'likelihood', LIKELIHOOD_CHOICES)
        require_float(self, 'foreground_weight', positive=True)
        require_image_size_divisible(self, 'decoder_widths')


@dataclass
class CCVAEConfig(BetaVAEConfig):
    """CC-VAE: q(z|s, c) and p(s|z, c), with c = e0(s0) from a context encoder of its own and a context decoder d0."""

    context_dim: int = 16
    """Size of the context vector c = e0(s0)."""
    context_recon_weight: float = 1.0
    """Weight of the reconstruction of s0 from c alone by d0, added to the conditional VAE loss."""
    context_skip: bool = False
    """Decode a change to s0: the decoder's logits are added to the logits of the context image s0 itself, so that
    what stays as it was in s0 (the tray, the objects, the camera's view of them) costs z and c nothing, on any rig,
    and z is left with what moved. False: p(s|z, c) from the vectors alone, as in the paper."""
    change_weight: float = 1.0
    """Weight of the state's pixels that changed from s0 (losses.changed_pixels: the arm, moved objects) in its
    reconstruction loss. The arm is a few percent of a 64 px frame, so at 1 (the paper's loss) a model that rebuilds
    the scene and leaves the arm out loses little; above 1 leaving out what moved costs that much more."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_int(self, 'context_dim', 1)
        require_float(self, 'context_recon_weight', positive=False)
        if not isinstance(self.context_skip, bool):
            raise ValueError(f'{type(self).__name__}.context_skip must be true or false, got {self.context_skip!r}')
        require_float(self, 'change_weight', positive=True)
        if self.foreground_weight != 1.0:
            raise ValueError(f'{type(self).__name__}.foreground_weight must be 1 (the CC-VAE weighs what changed from '
                             f's0: change_weight), got {self.foreground_weight!r}')


class ImaginedGoals(NamedTuple):
    """Goals imagined for B initial observations, n each."""

    latents: Tensor
    """(B, n, latent_dim) latents drawn from the prior N(0, I)."""
    images: Tensor
    """(B, n, C, H, W) their decodings under the context of each initial observation, in [0, 1]."""


def reparameterize(mean: Tensor, log_variance: Tensor) -> Tensor:
    """A differentiable sample of N(mean, exp(log_variance))."""
    return mean + torch.randn_like(mean) * (0.5 * log_variance).exp()


class _LatentGoalModel(nn.Module):
    """What both VAEs share: image checks, prior goal sampling and the latent-distance reward."""

    config: BetaVAEConfig

    def _check(self, images: Tensor, name: str) -> None:
        check_images(images, name, ('B',), self.config.channels, self.config.image_size)

    def _prior_sample(self, *shape: int, generator: torch.Generator | None) -> Tensor:
        device = next(self.parameters()).device
        return torch.randn(*shape, self.config.latent_dim, generator=generator, device=device)

    @inference
    def sample_goals(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """(count, latent_dim) goal latents from the prior N(0, I), on the model's device (as the generator's)."""
        return self._prior_sample(count, generator=generator)

    def _check_latents(self, latents: Tensor, name: str) -> None:
        if latents.dim() != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(f'{name} must have shape (N, {self.config.latent_dim}), got {tuple(latents.shape)}')

    def _goal_latents(self, goals: Tensor, encode_images: Callable[[Tensor], Tensor]) -> Tensor:
        if goals.dim() == 2 and goals.shape[1] == self.config.latent_dim:
            return goals
        if goals.dim() == 4:
            self._check(goals, 'goals')
            return encode_images(goals)
        raise ValueError(f'goals must be latents (N, {self.config.latent_dim}) or images (N, C, H, W), '
                         f'got {tuple(goals.shape)}')

    @staticmethod
    def _latent_distance_reward(latents: Tensor, goal_latents: Tensor) -> Tensor:
        check_same_rows({'states': latents, 'goals': goal_latents})
        return -(latents - goal_latents).norm(dim=-1)


class BetaVAE(_LatentGoalModel):
    """RIG's beta-VAE. State encoding e(s) = mu(s); reward r(s, g) = -|e(s) - e(g)|."""

    config: BetaVAEConfig

    def __init__(self, config: BetaVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ImageVectorEncoder(config.channels, config.encoder_widths, config.image_size,
                                          2 * config.latent_dim)
        self.decoder = ConvDecoder(config.latent_dim, config.decoder_widths, config.channels, config.image_size)

    def _posterior(self, states: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(states).chunk(2, dim=-1)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('state',), 'BetaVAE')
        states = batch['state']
        self._check(states, "batch['state']")
        mean, log_variance = self._posterior(states)
        logits = self.decoder(reparameterize(mean, log_variance))
        weights = up_weighted(self.config.foreground_weight, lambda: foreground_pixels(states))
        loss, reconstruction, kl = beta_vae_loss(logits, states, mean, log_variance, self.config.beta,
                                                 self.config.likelihood, weights)
        return loss, {'loss': loss.item(), 'reconstruction': reconstruction.item(), 'kl': kl.item()}

    @inference
    def encode(self, states: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, latent_dim) posterior means mu(s)."""
        self._check(states, 'states')
        return self._posterior(states)[0]

    @inference
    def decode(self, latents: Tensor) -> Tensor:
        """(N, latent_dim) -> (N, C, H, W) mean images in [0, 1]."""
        self._check_latents(latents, 'latents')
        return torch.sigmoid(self.decoder(latents))

    @inference
    def reward(self, states: Tensor, goals: Tensor) -> Tensor:
        """r(s, g) = -|mu(s) - g|, per row: (N,). states: (N, C, H, W); goals: (N, latent_dim) latents (e.g. from
        sample_goals) or (N, C, H, W) goal images, which are encoded first."""
        self._check(states, 'states')
        goal_latents = self._goal_latents(goals, lambda images: self._posterior(images)[0])
        return self._latent_distance_reward(self._posterior(states)[0], goal_latents)


class CCVAE(_LatentGoalModel):
    """CC-VAE: encoder q(z|s, c), decoder p(s|z, c), context c = e0(s0) from a separate encoder, and a context
    decoder d0 that must rebuild s0 from c alone, so that c carries the scene rather than leaving it to z."""

    config: CCVAEConfig

    def __init__(self, config: CCVAEConfig):
        super().__init__()
        self.config = config
        widths, size = config.encoder_widths, config.image_size
        self.context_encoder = ImageVectorEncoder(config.channels, widths, size, config.context_dim)
        self.encoder = ImageVectorEncoder(config.channels, widths, size, 2 * config.latent_dim,
                                          condition_dim=config.context_dim)
        self.decoder = ConvDecoder(config.latent_dim + config.context_dim, config.decoder_widths, config.channels,
                                   size)
        self.context_decoder = ConvDecoder(config.context_dim, config.decoder_widths, config.channels, size)

    def _posterior(self, states: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(states, context).chunk(2, dim=-1)

    def _decode_logits(self, latents: Tensor, context: Tensor, context_images: Tensor) -> Tensor:
        """context: (N, context_dim) e0(s0); context_images: the (N, C, H, W) s0 themselves (context_skip)."""
        logits = self.decoder(torch.cat([latents, context], dim=-1))
        if self.config.context_skip:
            logits = logits + torch.logit(context_images, eps=CONTEXT_SKIP_EPS)
        return logits

    def _check_pairs(self, states: Tensor, contexts: Tensor, states_name: str, contexts_name: str) -> None:
        self._check(states, states_name)
        self._check(contexts, contexts_name)
        check_same_rows({states_name: states, contexts_name: contexts})

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('state', 'context'), 'CCVAE')
        states, contexts = batch['state'], batch['context']
        self._check_pairs(states, contexts, "batch['state']", "batch['context']")
        context = self.context_encoder(contexts)
        mean, log_variance = self._posterior(states, context)
        logits = self._decode_logits(reparameterize(mean, log_variance), context, contexts)
        cfg = self.config
        loss, reconstruction, kl, context_reconstruction = ccvae_loss(
            logits, states, mean, log_variance, self.context_decoder(context), contexts, cfg.beta,
            cfg.context_recon_weight, cfg.likelihood, cfg.change_weight)
        return loss, {'loss': loss.item(), 'reconstruction': reconstruction.item(), 'kl': kl.item(),
                      'context_reconstruction': context_reconstruction.item()}

    @inference
    def context(self, contexts: Tensor) -> Tensor:
        """(N, C, H, W) initial observations s0 -> (N, context_dim) c = e0(s0)."""
        self._check(contexts, 'contexts')
        return self.context_encoder(contexts)

    @inference
    def encode(self, states: Tensor, contexts: Tensor) -> Tensor:
        """(N, C, H, W) states and their episodes' initial observations -> (N, latent_dim) means mu(s, e0(s0))."""
        self._check_pairs(states, contexts, 'states', 'contexts')
        return self._posterior(states, self.context_encoder(contexts))[0]

    @inference
    def encode_in_context(self, states: Tensor, context: Tensor) -> Tensor:
        """(N, C, H, W) states and (N, context_dim) context vectors c = e0(s0) from context() -> (N, latent_dim)
        means: encode() for a caller that keeps an episode's context instead of encoding s0 at every state."""
        self._check(states, 'states')
        if context.dim() != 2 or context.shape[1] != self.config.context_dim:
            raise ValueError(f'context must have shape (N, {self.config.context_dim}), got {tuple(context.shape)}')
        check_same_rows({'states': states, 'context': context})
        return self._posterior(states, context)[0]

    @inference
    def decode(self, latents: Tensor, contexts: Tensor) -> Tensor:
        """(N, latent_dim) latents and (N, C, H, W) initial observations -> (N, C, H, W) mean images in [0, 1]."""
        self._check_latents(latents, 'latents')
        self._check(contexts, 'contexts')
        check_same_rows({'latents': latents, 'contexts': contexts})
        return torch.sigmoid(self._decode_logits(latents, self.context_encoder(contexts), contexts))

    @inference
    def imagine_goals(self, initial_observations: Tensor, count: int,
                      generator: torch.Generator | None = None) -> ImaginedGoals:
        """count goals per initial observation s0 (B, C, H, W): z ~ N(0, I), decoded with c = e0(s0), so the
        imagined goals show the objects of that episode."""
        self._check(initial_observations, 'initial_observations')
        batch = initial_observations.shape[0]
        latents = self._prior_sample(batch, count, generator=generator)
        context = self.context_encoder(initial_observations)
        repeated = context[:, None].expand(-1, count, -1).flatten(0, 1)
        repeated_images = initial_observations[:, None].expand(-1, count, -1, -1, -1).flatten(0, 1)
        images = torch.sigmoid(self._decode_logits(latents.flatten(0, 1), repeated, repeated_images))
        return ImaginedGoals(latents, images.view(batch, count, *images.shape[1:]))

    @inference
    def reward(self, states: Tensor, goals: Tensor, contexts: Tensor) -> Tensor:
        """r(s, g) = -|mu(s, c) - g|, per row: (N,), with c = e0(s0) of each row's initial observation.
        goals: (N, latent_dim) latents or (N, C, H, W) goal images, encoded under the same context."""
        self._check_pairs(states, contexts, 'states', 'contexts')
        context = self.context_encoder(contexts)
        goal_latents = self._goal_latents(goals, lambda images: self._posterior(images, context)[0])
        return self._latent_distance_reward(self._posterior(states, context)[0], goal_latents)
