"""A goal-conditioned grasp critic for instance grasping (Grasp2Vec, Jang, Devin et al. 2018, section 5.3).

One grasp is one decision, so the critic is a bandit's: Q(s, g, a) is the expected Grasp2Vec reward of a top-down
grasp at image location a of scene s when the goal is the object of embedding g. A fully convolutional net scores
every location of the scene image at once (a Q map) and the policy grasps at its argmax.

The goal enters as the frozen Grasp2Vec object embedding phi_o(goal image), unit length, in two ways: it modulates
the scene features (FiLM), and its cosine with the frozen Grasp2Vec scene map phi_s,spatial(s) (where Grasp2Vec
sees the goal, coarse) is one more input channel. The net itself learns where a grasp closes on something, which
the coarse Grasp2Vec map cannot say, from the relabelled outcomes of grasps.

Batch for forward: {'scene': (B, 3, S, S) float in [0, 1], 'similarity': (B, h, w) cosine map, 'goal': (B, D) unit
goal embeddings, 'cell': (B, 2) long (row, column) of the grasp in the Q map, 'target': (B,) reward in [0, 1]}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_robot.models.encoders import require_keys
from ssl_robot.typed_config import convert_fields, require_at_least


@dataclass
class GraspQConfig:
    """The grasp critic's shape."""

    image_size: int = 128
    """Side of the square scene image the net sees (the scene camera's image is resized to it)."""
    trunk_widths: tuple[int, ...] = (32, 64)
    """Output channels of the stride-2 conv layers: the Q map is image_size / 2**len(trunk_widths) on a side."""
    head_width: int = 64
    """Channels of the conv layer after the goal has been mixed in."""
    goal_dim: int = 64
    """Size of the goal embedding (the Grasp2Vec checkpoint's embedding_dim)."""

    def __post_init__(self) -> None:
        convert_fields(self)
        for name in ('image_size', 'head_width', 'goal_dim'):
            require_at_least(self, name, 1)
        if not self.trunk_widths or min(self.trunk_widths) < 1:
            raise ValueError(f'GraspQConfig.trunk_widths must be one or more positive ints, got {self.trunk_widths}')
        stride = 2 ** len(self.trunk_widths)
        if self.image_size % stride:
            raise ValueError(f'GraspQConfig.image_size must be a multiple of {stride} (2 ** the number of trunk '
                             f'layers), got {self.image_size}')

    @property
    def map_size(self) -> int:
        """Side of the Q map."""
        return self.image_size // 2 ** len(self.trunk_widths)


class GraspQNetwork(nn.Module):
    def __init__(self, config: GraspQConfig) -> None:
        super().__init__()
        self.config = config
        layers, channels = [], 3
        for width in config.trunk_widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU()]
            channels = width
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.film = nn.Linear(config.goal_dim, 2 * channels)
        self.head = nn.Sequential(nn.Conv2d(channels + 1, config.head_width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(config.head_width, 1, 1))

    def q_logits(self, scene: Tensor, similarity: Tensor, goal: Tensor) -> Tensor:
        """(B, 3, S, S), (B, h, w), (B, D) -> (B, M, M) logits of Q over the map (module doc)."""
        size, dim = self.config.image_size, self.config.goal_dim
        if scene.ndim != 4 or scene.shape[1:] != (3, size, size):
            raise ValueError(f'scene must be (B, 3, {size}, {size}), got {tuple(scene.shape)}')
        if goal.ndim != 2 or goal.shape != (scene.shape[0], dim):
            raise ValueError(f'goal must be ({scene.shape[0]}, {dim}), got {tuple(goal.shape)}')
        if similarity.ndim != 3 or similarity.shape[0] != scene.shape[0]:
            raise ValueError(f'similarity must be ({scene.shape[0]}, h, w), got {tuple(similarity.shape)}')
        features = self.trunk(scene)
        scale, shift = self.film(goal)[:, :, None, None].chunk(2, dim=1)
        features = features * (1 + scale) + shift
        cue = F.interpolate(similarity[:, None], size=features.shape[-2:], mode='bilinear', align_corners=False)
        return self.head(torch.cat([features, cue], dim=1))[:, 0]

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Binary cross-entropy of Q at each row's grasp cell against its reward (a soft label in [0, 1])."""
        require_keys(batch, ('scene', 'similarity', 'goal', 'cell', 'target'), 'GraspQNetwork')
        logits = self.q_logits(batch['scene'], batch['similarity'], batch['goal'])
        cell, target = batch['cell'], batch['target']
        rows = torch.arange(len(logits), device=logits.device)
        chosen = logits[rows, cell[:, 0], cell[:, 1]]
        loss = F.binary_cross_entropy_with_logits(chosen, target)
        with torch.no_grad():
            predicted = torch.sigmoid(chosen)
            error = (predicted - target).abs().mean()
        return loss, {'loss': loss.item(), 'q_abs_error': error.item(), 'q_mean': predicted.mean().item()}
