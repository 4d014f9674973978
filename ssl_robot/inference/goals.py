"""What the goal node computes, without ROS: goal images imagined by a β-VAE or CC-VAE or taken from the scene itself,
and the latent of every scene frame.

Frames are (H, W, 3) uint8 RGB arrays of any size, resized to the model's image_size as training resized them
(model_holder.model_input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssl_robot.inference.model_holder import LoadedModel, model_input
from ssl_robot.models.registry import VAE_FAMILY, require_family
from ssl_robot.models.vae import CCVAE, BetaVAE


def needs_context(method: str) -> bool:
    """Whether the method's goals are imagined from the current scene (CC-VAE) or from the prior alone (β-VAE)."""
    return require_family(method, VAE_FAMILY, 'imagine goals').needs_context


@dataclass(frozen=True)
class Goal:
    latent: np.ndarray
    """(1, latent_dim) float32 z: drawn from the prior N(0, I) (GoalSampler), or a scene's posterior mean
    (scene_goal)."""
    image: np.ndarray
    """(H, W, 3) uint8 RGB: an imagined goal is z decoded (under the context, for a CC-VAE) at the model's image_size;
    a scene goal is the camera frame itself."""
    model_id: str


@dataclass(frozen=True)
class SceneLatent:
    latent: np.ndarray
    """(1, latent_dim) float32: the posterior mean e(s) = mu(s), or e(s | s0) for a CC-VAE."""
    model_id: str


def scene_latent(loaded: LoadedModel, frame: np.ndarray, context: np.ndarray | None) -> SceneLatent:
    """The latent of the scene in frame ((H, W, 3) uint8 RGB): its posterior mean, the same for a scene made the goal
    and for every scene the goal node publishes on /latent/scene, so that the latent-goal reward is 0 when the scene
    looks like the goal. A CC-VAE encodes under the context of the episode's first frame (context, required); a β-VAE
    takes no context (None)."""
    current = loaded.current
    model = current.model
    if needs_context(loaded.method) != (context is not None):
        raise ValueError(f'a {loaded.method} scene latent is encoded '
                         f'{"under a context image" if context is None else "without a context image"}')
    if isinstance(model, CCVAE):
        latent = model.encode(model_input(loaded, frame), model_input(loaded, context))
    elif isinstance(model, BetaVAE):
        latent = model.encode(model_input(loaded, frame))
    else:
        raise ValueError(f'{current.model_id} is not a β-VAE or CC-VAE model')
    return SceneLatent(latent.cpu().numpy().astype(np.float32), current.model_id)


def scene_goal(loaded: LoadedModel, frame: np.ndarray, context: np.ndarray | None) -> Goal:
    """The scene in frame as a goal: its latent (scene_latent, under the same context rules) and the frame itself."""
    encoded = scene_latent(loaded, frame, context)
    return Goal(encoded.latent, np.array(frame), encoded.model_id)


class GoalSampler:
    """Imagined goals: z ~ N(0, I) decoded into an image, under the context s0 of the current scene for a CC-VAE.

    The latents come from one CPU generator, seeded once: a seeded sampler draws the same sequence of latents
    whatever the model's device, and for both methods alike.
    """

    def __init__(self, seed: int | None) -> None:
        self._generator = torch.Generator()
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)

    def sample(self, loaded: LoadedModel, context: np.ndarray | None) -> Goal:
        """A goal from the loaded CC-VAE (context: the scene s0 as an (H, W, 3) uint8 RGB frame) or β-VAE (context
        None: its goals do not depend on the scene)."""
        current = loaded.current
        model = current.model
        if needs_context(loaded.method) != (context is not None):
            raise ValueError(f'a {loaded.method} goal is imagined '
                             f'{"from a context image" if context is None else "without a context image"}')
        latent = torch.randn(1, model.config.latent_dim, generator=self._generator).to(loaded.device)
        if isinstance(model, CCVAE):
            image = model.decode(latent, model_input(loaded, context))
        elif isinstance(model, BetaVAE):
            image = model.decode(latent)
        else:
            raise ValueError(f'{current.model_id} is not a β-VAE or CC-VAE model')
        pixels = (image[0].movedim(0, -1) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return Goal(latent.cpu().numpy().astype(np.float32), pixels, current.model_id)
