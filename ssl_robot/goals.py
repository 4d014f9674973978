"""What the Grasp2Vec and goal nodes compute, without ROS: grasp embeddings and the localisation heatmap drawn over
the scene, goal images imagined by a β-VAE or CC-VAE or taken from the scene itself, and the bookkeeping both nodes share (a checkpoint that may
not be loadable yet, problems reported per kind; their frame buffers are in frame_buffer.py). No rclpy: tested without a graph.

Frames are (H, W, 3) uint8 RGB arrays of any size, resized to the model's image_size as training resized them
(inference.preprocess).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ssl_robot.data.reader import rgb_to_tensor
from ssl_robot.problem_log import ProblemLog
from ssl_robot.inference import LoadedModel, default_checkpoint, preprocess, require_known_method
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.models.encoders import default_device
from ssl_robot.models.grasp2vec import Grasp2Vec
from ssl_robot.models.vae import CCVAE, BetaVAE

GOAL_METHODS = ('ccvae', 'betavae')
"""Methods that imagine goal images: the CC-VAE from the current scene as context, the β-VAE from the prior alone."""
HEATMAP_COLORMAP = cv2.COLORMAP_JET
"""Blue (object unlikely there) to red (likely there), the colouring RViz and Foxglove users read heatmaps in."""


class ModelUnavailable(RuntimeError):
    """A request needs the model, but no checkpoint has loaded yet; the message says why."""


class ModelLoader:
    """A node's model: its checkpoint loaded for inference when it can be, and kept up to date with the file.

    Unlike LoadedModel, it exists before any checkpoint could be loaded (the file is still being trained, copied,
    or the default one was never made), so a node can start, say why it has no model and pick it up once the file
    appears. An empty checkpoint path means the shipped default of the method, looked up at every attempt.
    """

    def __init__(self, checkpoint: str | os.PathLike, method: str, device: torch.device | str | None = None) -> None:
        require_known_method(method)
        self.checkpoint = Path(checkpoint) if str(checkpoint) else None
        self.method = method
        self.device = torch.device(device) if device is not None else default_device()
        self.loaded: LoadedModel | None = None
        self.error = 'no load attempted yet'

    def refresh(self) -> bool:
        """Load the checkpoint if none is loaded, else reload it if the file changed; True if a new model now serves.

        Raises FileNotFoundError or CheckpointError naming the file and what is wrong with it, keeping the model
        that served before (if any); the next call tries again."""
        try:
            if self.loaded is None:
                path = self.checkpoint if self.checkpoint is not None else default_checkpoint(self.method)
                self.loaded = LoadedModel(path, self.method, self.device)
                changed = True
            else:
                changed = self.loaded.reload_if_changed()
        except (CheckpointError, FileNotFoundError) as error:
            self.error = str(error)
            raise
        self.error = ''
        return changed

    def refresh_reporting(self, problems: ProblemLog, announce: Callable[[str], None]) -> None:
        """refresh() for a node's timer: a newly loaded model is announced, a failed load reported to problems as a
        'checkpoint' problem."""
        previous = self.model_id
        try:
            if self.refresh():
                announce(f'checkpoint loaded: {previous} -> {self.model_id}')
        except (CheckpointError, FileNotFoundError) as error:
            problems.report('checkpoint', f'{error}; still using {previous}')

    def require(self) -> LoadedModel:
        """The loaded model; ModelUnavailable saying why there is none."""
        if self.loaded is None:
            raise ModelUnavailable(f'no {self.method} model loaded: {self.error}')
        return self.loaded

    @property
    def model_id(self) -> str:
        return self.loaded.model_id if self.loaded is not None else 'none'


def colour_heatmap(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: heat ((h, w) finite floats) bilinearly resized, scaled from its minimum (blue)
    to its maximum (red). A flat map, which locates nothing, is all blue."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0 or not np.isfinite(heat).all():
        raise ValueError(f'heat must be a non-empty (h, w) array of finite values, got shape {heat.shape}')
    if height < 1 or width < 1:
        raise ValueError(f'heatmap size must be positive, got {width}x{height}')
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(heat.min()), float(heat.max())
    scaled = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    levels = np.round(scaled * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, HEATMAP_COLORMAP), cv2.COLOR_BGR2RGB)


def heatmap_overlay(scene: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """The scene ((H, W, 3) uint8 RGB) with the coloured heatmap blended over it at this opacity (0: the scene
    alone, 1: the heatmap alone), same size and dtype."""
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f'scene must be an (H, W, 3) uint8 RGB image, got {scene.dtype} {scene.shape}')
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity must be in [0, 1], got {opacity}')
    colours = colour_heatmap(heat, scene.shape[0], scene.shape[1])
    return cv2.addWeighted(colours, opacity, np.ascontiguousarray(scene), 1.0 - opacity, 0.0)


def _model_input(loaded: LoadedModel, frame: np.ndarray) -> torch.Tensor:
    """(1, 3, S, S) float tensor on the model's device: the frame as the model was trained to see it."""
    return rgb_to_tensor(preprocess([frame], loaded.config.image_size)).to(loaded.device)


@dataclass(frozen=True)
class GraspEmbeddings:
    """What Grasp2Vec makes of one grasp attempt."""

    scene: np.ndarray
    """(1, D) float32 phi_s(s_pre): the scene before the grasp."""
    grasped_object: np.ndarray | None
    """(1, D) float32 phi_o(o): the object shown to the object camera; None when the grasp failed."""
    heatmap: np.ndarray | None
    """(H, W, 3) uint8 RGB: phi_o(o) . phi_s,spatial(s_pre) coloured over s_pre at its own size; None on failure."""
    model_id: str


def embed_grasp(loaded: LoadedModel, scene: np.ndarray, grasped_object: np.ndarray | None,
                heatmap_opacity: float) -> GraspEmbeddings:
    """Grasp2Vec embeddings of s_pre (scene) and, for a successful grasp, of o (grasped_object) and where o is in
    s_pre. One model serves the whole grasp, even if a reload swaps it meanwhile."""
    current = loaded.current
    model = current.model
    if not isinstance(model, Grasp2Vec):
        raise ValueError(f'{current.model_id} is not a Grasp2Vec model')
    scene_input = _model_input(loaded, scene)
    scene_embedding = model.scene_embedding(scene_input).cpu().numpy()
    if grasped_object is None:
        return GraspEmbeddings(scene_embedding, None, None, current.model_id)
    object_input = _model_input(loaded, grasped_object)
    object_embedding = model.object_embedding(object_input).cpu().numpy()
    heat = model.heatmap(scene_input, object_input, upsample=True)[0].cpu().numpy()
    return GraspEmbeddings(scene_embedding, object_embedding, heatmap_overlay(scene, heat, heatmap_opacity),
                           current.model_id)


def needs_context(method: str) -> bool:
    """Whether the method's goals are imagined from the current scene (CC-VAE) or from the prior alone (β-VAE)."""
    if method not in GOAL_METHODS:
        raise ValueError(f'method {method!r} does not imagine goals: expected one of {GOAL_METHODS}')
    return method == 'ccvae'


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
        latent = model.encode(_model_input(loaded, frame), _model_input(loaded, context))
    elif isinstance(model, BetaVAE):
        latent = model.encode(_model_input(loaded, frame))
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
            image = model.decode(latent, _model_input(loaded, context))
        elif isinstance(model, BetaVAE):
            image = model.decode(latent)
        else:
            raise ValueError(f'{current.model_id} is not a β-VAE or CC-VAE model')
        pixels = (image[0].movedim(0, -1) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return Goal(latent.cpu().numpy().astype(np.float32), pixels, current.model_id)
