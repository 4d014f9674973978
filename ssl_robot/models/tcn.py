"""Time-Contrastive Networks (Sermanet et al. 2018, arXiv 1704.06888): multi-view TCN and the single-view baseline.

Batches, images float in [0, 1]:
  TCN:          {'frames': (B, V, C, H, W), 'times': (B,) int, 'episode': (B,) int}, the V views of row b being
                synchronized frames of time times[b] of episode episode[b]; rows are B distinct times.
  SingleViewTCN {'frames': (B, C, H, W), 'times': (B,) int, 'episode': (B,) int}; the batch must hold frames
                close in time to one another (positives) as well as far ones (negatives).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .config import EmbeddingConfig, require_choice, require_float, require_int
from .encoders import (ImageVectorEncoder, check_images, check_indices, color_jitter, inference, random_resized_crop,
                       random_shift, require_keys)
from .losses import (multiview_npairs_loss, multiview_triplet_loss, single_view_tcn_loss, squared_distances,
                     temporal_negative_mask, temporal_positive_mask)

MINING_CHOICES = ('all', 'semi_hard')
TCN_LOSS_CHOICES = ('triplet', 'npairs')


@dataclass
class FrameEmbeddingConfig(EmbeddingConfig):
    """A per-frame embedding, with the photometric and crop augmentations of contrastive learning (SimCLR, Chen et
    al. 2020) on top of the random shift. Training only; each image (each view of a time apart) draws its own, so
    views can be matched neither by exact colour nor by exact framing, only by what they show."""

    augment_crop_scale: float = 1.0
    """Random resized crop (ssl_robot.models.encoders.random_resized_crop): each image is replaced by a crop of at
    least this fraction of its area, resized back. 1 turns it off."""
    augment_brightness: float = 0.0
    """Colour jitter: each image is scaled by a factor drawn from [1 - b, 1 + b]; at most 1, 0 turns it off."""
    augment_contrast: float = 0.0
    """Colour jitter: each image's difference from its mean grey level is scaled by a factor drawn from
    [1 - c, 1 + c]; at most 1, 0 turns it off. RGB only."""
    augment_saturation: float = 0.0
    """Colour jitter: each pixel's difference from its grey level is scaled by a factor drawn from [1 - s, 1 + s];
    at most 1, 0 turns it off. RGB only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_float(self, 'augment_crop_scale', positive=True)
        if self.augment_crop_scale > 1:
            raise ValueError(f'{type(self).__name__}.augment_crop_scale must be in (0, 1], got '
                             f'{self.augment_crop_scale}')
        for name in ('augment_brightness', 'augment_contrast', 'augment_saturation'):
            require_float(self, name, positive=False)
            if getattr(self, name) > 1:
                raise ValueError(f'{type(self).__name__}.{name} must be in [0, 1] (a factor 1 - {getattr(self, name)} '
                                 f'would be negative), got {getattr(self, name)}')
        for name in ('augment_contrast', 'augment_saturation'):
            if getattr(self, name) and self.channels != 3:
                raise ValueError(f'{type(self).__name__}.{name} needs RGB images (channels 3), got channels '
                                 f'{self.channels}')


@dataclass
class TCNConfig(FrameEmbeddingConfig):
    """Multi-view TCN: per-frame L2-normalised embeddings, trained with a time-contrastive loss across views."""

    margin: float = 0.2
    """Triplet margin, in squared embedding distance."""
    negative_window: int = 10
    """Frames of the same episode within this many frames of the anchor are never negatives."""
    mining: str = 'all'
    """Triplet selection: 'all' triplets, or 'semi_hard' negative mining (FaceNet)."""
    loss: str = 'triplet'
    """'triplet' (multi-view triplet loss) or 'npairs' (n-pairs across views)."""
    temperature: float = 0.1
    """Divides the n-pairs logits: unit-norm embeddings give logits in [-1, 1], too flat to learn from."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_float(self, 'margin', positive=True)
        require_int(self, 'negative_window', 0)
        require_choice(self, 'mining', MINING_CHOICES)
        require_choice(self, 'loss', TCN_LOSS_CHOICES)
        require_float(self, 'temperature', positive=True)


@dataclass
class SingleViewTCNConfig(FrameEmbeddingConfig):
    """Single-view TCN baseline: positives near in time, negatives far in time, all from one camera."""

    margin: float = 0.2
    """Triplet margin, in squared embedding distance."""
    positive_radius: int = 1
    """Other frames of the episode at most this many frames from the anchor are positives."""
    negative_radius: int = 10
    """Frames more than this many frames from the anchor (or from another episode) are negatives."""
    mining: str = 'all'
    """Triplet selection: 'all' triplets, or 'semi_hard' negative mining (FaceNet)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_float(self, 'margin', positive=True)
        require_int(self, 'positive_radius', 1)
        require_int(self, 'negative_radius', self.positive_radius)
        require_choice(self, 'mining', MINING_CHOICES)


def check_time_indices(batch: dict[str, Tensor], batch_size: int) -> tuple[Tensor, Tensor]:
    """batch['times'] and batch['episode'], checked to be integer tensors of shape (batch_size,)."""
    check_indices(batch['times'], "batch['times']", batch_size)
    check_indices(batch['episode'], "batch['episode']", batch_size)
    return batch['times'], batch['episode']


def contrast_metrics(loss: Tensor, positive_distances: Tensor, negative_distances: Tensor) -> dict[str, float]:
    """The loss and the mean squared distances of positive and of negative pairs: training should pull them apart."""
    return {'loss': loss.item(), 'positive_distance': positive_distances.mean().item(),
            'negative_distance': negative_distances.mean().item()}


def multiview_metrics(loss: Tensor, embeddings: Tensor, times: Tensor, episode: Tensor,
                      negative_window: int) -> dict[str, float]:
    """contrast_metrics for (B, V, D) embeddings: positives are views 0 and 1 of a row, negatives view 0 of rows
    far in time."""
    positive = (embeddings[:, 0] - embeddings[:, 1]).pow(2).sum(-1)
    negatives = temporal_negative_mask(times, episode, negative_window)
    negative = squared_distances(embeddings[:, 0], embeddings[:, 0])[negatives]
    return contrast_metrics(loss, positive, negative)


class _FrameEmbeddingModel(nn.Module):
    """A per-frame conv encoder with an L2-normalised embedding, for both TCN variants."""

    def __init__(self, config: TCNConfig | SingleViewTCNConfig):
        super().__init__()
        self.config = config
        self.encoder = ImageVectorEncoder(config.channels, config.encoder_widths, config.image_size,
                                          config.embedding_dim)

    def _embed(self, images: Tensor) -> Tensor:
        if self.training:
            cfg = self.config
            images = random_resized_crop(images, cfg.augment_crop_scale)
            images = random_shift(images, cfg.augment_shift_px)
            images = color_jitter(images, cfg.augment_brightness, cfg.augment_contrast, cfg.augment_saturation)
        return F.normalize(self.encoder(images), dim=-1)

    @inference
    def embed(self, images: Tensor) -> Tensor:
        """(N, C, H, W) images in [0, 1] -> (N, embedding_dim) unit-norm embeddings."""
        check_images(images, 'images', ('N',), self.config.channels, self.config.image_size)
        return self._embed(images)


class TCN(_FrameEmbeddingModel):
    """Multi-view TCN: synchronized views of one time are pulled together, the same view far in time pushed away."""

    config: TCNConfig

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('frames', 'times', 'episode'), 'TCN')
        frames = batch['frames']
        check_images(frames, "batch['frames']", ('B', 'V'), self.config.channels, self.config.image_size)
        batch_size, views = frames.shape[:2]
        times, episode = check_time_indices(batch, batch_size)
        embeddings = self._embed(frames.flatten(0, 1)).view(batch_size, views, -1)
        cfg = self.config
        if cfg.loss == 'triplet':
            loss = multiview_triplet_loss(embeddings, times, episode, cfg.margin, cfg.negative_window, cfg.mining)
        else:
            loss = multiview_npairs_loss(embeddings, times, episode, cfg.negative_window, cfg.temperature)
        return loss, multiview_metrics(loss, embeddings.detach(), times, episode, cfg.negative_window)


class SingleViewTCN(_FrameEmbeddingModel):
    """Single-view TCN baseline: frames near in time are pulled together, frames far in time pushed away."""

    config: SingleViewTCNConfig

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('frames', 'times', 'episode'), 'SingleViewTCN')
        frames = batch['frames']
        check_images(frames, "batch['frames']", ('B',), self.config.channels, self.config.image_size)
        times, episode = check_time_indices(batch, frames.shape[0])
        embeddings = self._embed(frames)
        cfg = self.config
        loss = single_view_tcn_loss(embeddings, times, episode, cfg.margin, cfg.positive_radius,
                                    cfg.negative_radius, cfg.mining)
        distances = squared_distances(embeddings.detach(), embeddings.detach())
        positives = temporal_positive_mask(times, episode, cfg.positive_radius)
        negatives = temporal_negative_mask(times, episode, cfg.negative_radius)
        return loss, contrast_metrics(loss, distances[positives], distances[negatives])
