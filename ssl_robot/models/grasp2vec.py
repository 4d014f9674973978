"""Grasp2Vec (Jang, Devin et al. 2018, arXiv 1811.06964): scene and object embeddings made arithmetically consistent,
phi_s(scene before grasp) - phi_s(scene after grasp) ~ phi_o(grasped object).

Batch, images float in [0, 1], (B, C, H, W) each: {'pre': scene before the grasp, 'post': scene after it,
'object': image of the grasped object}. Rows must be B distinct grasps: every other row is a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import EmbeddingConfig, require_float, require_widths
from .encoders import ConvEncoder, check_images, check_same_rows, inference, random_shift, require_keys
from .losses import grasp2vec_loss


@dataclass
class Grasp2VecConfig(EmbeddingConfig):
    """Grasp2Vec: separate scene and object encoders, each keeping a spatial map before pooling."""

    encoder_widths: tuple[int, ...] = (32, 64, 128)
    """Output channels of the encoder's stride-2 conv layers; fewer layers keep a finer map for the heatmap."""
    refine_widths: tuple[int, ...] = ()
    """Output channels of 3x3 stride-1 conv layers after the encoder: they widen the receptive field without
    coarsening the map, so fewer encoder layers (a finer heatmap) still see whole objects. Empty: none."""
    embedding_dim: int = 64
    """Channels of the spatial map, hence size of the pooled embeddings."""
    l2_penalty: float = 1e-3
    """Weight (lambda) of the mean squared norm of the scene-difference and object embeddings in the loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_float(self, 'l2_penalty', positive=False)
        if self.refine_widths:
            require_widths(self, 'refine_widths')
        else:
            self.refine_widths = ()


class SpatialEmbedder(nn.Module):
    """ConvEncoder then a 1x1 conv to embedding_dim channels; ReLU gives the spatial map, its mean the vector."""

    def __init__(self, config: Grasp2VecConfig):
        super().__init__()
        self.encoder = ConvEncoder(config.channels, config.encoder_widths, config.refine_widths)
        self.to_embedding = nn.Conv2d(self.encoder.out_channels, config.embedding_dim, 1)

    def spatial(self, images: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, embedding_dim, h, w), non-negative."""
        return F.relu(self.to_embedding(self.encoder(images)))

    def forward(self, images: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, embedding_dim): the spatial map mean-pooled."""
        return self.spatial(images).mean(dim=(2, 3))


class Grasp2Vec(nn.Module):
    """Scene encoder phi_s and object encoder phi_o, with no shared weights."""

    def __init__(self, config: Grasp2VecConfig):
        super().__init__()
        self.config = config
        self.scene_encoder = SpatialEmbedder(config)
        self.object_encoder = SpatialEmbedder(config)

    def _check(self, images: Tensor, name: str) -> None:
        check_images(images, name, ('B',), self.config.channels, self.config.image_size)

    def _check_pairs(self, named_images: dict[str, Tensor]) -> None:
        for name, images in named_images.items():
            self._check(images, name)
        check_same_rows(named_images)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('pre', 'post', 'object'), 'Grasp2Vec')
        self._check_pairs({f"batch['{key}']": batch[key] for key in ('pre', 'post', 'object')})
        pre, post, objects = batch['pre'], batch['post'], batch['object']
        if self.training:
            # pre and post shift together, so their difference still isolates the grasped object.
            shift = self.config.augment_shift_px
            pre, post = random_shift(torch.cat([pre, post], dim=1), shift).chunk(2, dim=1)
            objects = random_shift(objects, shift)
        pre, post = self.scene_encoder(torch.cat([pre, post])).chunk(2)
        differences = pre - post
        objects = self.object_encoder(objects)
        loss = grasp2vec_loss(differences, objects, self.config.l2_penalty)
        with torch.no_grad():
            matches = (differences @ objects.T).argmax(dim=1)
            retrieval = (matches == torch.arange(len(matches), device=matches.device)).float().mean()
        return loss, {'loss': loss.item(), 'retrieval_accuracy': retrieval.item()}

    @inference
    def scene_embedding(self, scenes: Tensor) -> Tensor:
        """(N, C, H, W) scenes -> (N, embedding_dim) phi_s."""
        self._check(scenes, 'scenes')
        return self.scene_encoder(scenes)

    @inference
    def object_embedding(self, objects: Tensor) -> Tensor:
        """(N, C, H, W) object images -> (N, embedding_dim) phi_o."""
        self._check(objects, 'objects')
        return self.object_encoder(objects)

    @inference
    def heatmap(self, scenes: Tensor, objects: Tensor, upsample: bool = False) -> Tensor:
        """Where each object is in its scene: phi_o(o) . phi_s,spatial(s) at every location of the scene map.

        scenes, objects: (N, C, H, W) -> (N, h, w), or (N, H, W) bilinearly upsampled when upsample is set. The
        map's mean over locations equals phi_o(o) . phi_s(s), since phi_s(s) is the mean of the spatial map.
        """
        self._check_pairs({'scenes': scenes, 'objects': objects})
        spatial = self.scene_encoder.spatial(scenes)
        heat = torch.einsum('nd,ndhw->nhw', self.object_encoder(objects), spatial)
        if upsample:
            heat = F.interpolate(heat[:, None], size=scenes.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
        return heat

    @inference
    def reward(self, goal_objects: Tensor, grasped_objects: Tensor, normalize: bool = True) -> Tensor:
        """Goal-conditioned grasping reward, per row: (N,).

        goal_objects, grasped_objects: (N, C, H, W) images of the goal object and of the object actually grasped.
        normalize=True (the default) returns the cosine similarity of phi_o(g) and phi_o(o), in [0, 1] (the
        embeddings are non-negative), which does not grow with embedding magnitude, so one success threshold fits
        every object, and ranks the goal object first more often than the paper's dot product phi_o(g) . phi_o(o)
        (normalize=False) does (README, reward_node).
        """
        self._check_pairs({'goal_objects': goal_objects, 'grasped_objects': grasped_objects})
        goals = self.object_encoder(goal_objects)
        grasped = self.object_encoder(grasped_objects)
        if normalize:
            goals, grasped = F.normalize(goals, dim=-1), F.normalize(grasped, dim=-1)
        return (goals * grasped).sum(-1)
