"""Multi-frame TCN (Dwibedi et al. 2018, arXiv 1808.00928): one embedding per short clip, so it can hold motion.

A clip ending at time t is n frames taken every s frames: t - (n-1)s, ..., t - s, t, a lookback window of
(n-1)s + 1 frames. Each frame goes through a shared CNN; a 3D convolution spanning all n frames aggregates them.

Batch, images float in [0, 1]: {'clips': (B, V, n, C, H, W), 'times': (B,) int, 'episode': (B,) int}, the V views
of row b being synchronized clips ending at time times[b] of episode episode[b]; frames oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .config import EmbeddingConfig, require_float, require_int
from .encoders import ConvEncoder, check_images, inference, random_shift, require_keys
from .losses import multiview_npairs_loss
from .tcn import check_time_indices, multiview_metrics


@dataclass
class MultiFrameTCNConfig(EmbeddingConfig):
    """mfTCN: a clip of num_frames frames, stride frames apart, gives one L2-normalised embedding."""

    num_frames: int = 3
    """Frames per clip (n)."""
    stride: int = 2
    """Frames between consecutive clip frames (s); the clip spans (n-1)s + 1 frames."""
    temporal_channels: int = 64
    """Output channels of the 3D convolution that aggregates the frames."""
    negative_window: int = 10
    """Clips of the same episode ending within this many frames of the anchor's are never negatives."""
    temperature: float = 0.1
    """Divides the n-pairs logits: unit-norm embeddings give logits in [-1, 1], too flat to learn from."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_int(self, 'num_frames', 1)
        require_int(self, 'stride', 1)
        require_int(self, 'temporal_channels', 1)
        require_int(self, 'negative_window', 0)
        require_float(self, 'temperature', positive=True)

    @property
    def lookback_frames(self) -> int:
        """Frames a clip spans: (n-1)s + 1."""
        return (self.num_frames - 1) * self.stride + 1


class MultiFrameTCN(nn.Module):
    """Per-frame CNN, then a 3D convolution over (time, height, width) that spans the whole clip in time, then a
    linear layer on the flattened map, L2-normalised. Trained with the n-pairs loss across synchronized views."""

    def __init__(self, config: MultiFrameTCNConfig):
        super().__init__()
        self.config = config
        self.frame_encoder = ConvEncoder(config.channels, config.encoder_widths)
        self.temporal = nn.Conv3d(self.frame_encoder.out_channels, config.temporal_channels,
                                  kernel_size=(config.num_frames, 3, 3), padding=(0, 1, 1))
        self.project = nn.Linear(config.temporal_channels * config.feature_size ** 2, config.embedding_dim)

    def _embed_clips(self, clips: Tensor) -> Tensor:
        count, frames = clips.shape[:2]
        if self.training:
            # One shift per clip: the temporal convolution must see the frames of a clip aligned.
            clips = random_shift(clips.flatten(1, 2), self.config.augment_shift_px).view(clips.shape)
        features = self.frame_encoder(clips.flatten(0, 1))
        # (N*n, C', h, w) -> (N, C', n, h, w): Conv3d wants time between channels and space.
        features = features.view(count, frames, *features.shape[1:]).transpose(1, 2)
        aggregated = F.relu(self.temporal(features))
        return F.normalize(self.project(aggregated.flatten(1)), dim=-1)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        require_keys(batch, ('clips', 'times', 'episode'), 'MultiFrameTCN')
        clips = batch['clips']
        cfg = self.config
        check_images(clips, "batch['clips']", ('B', 'V', cfg.num_frames), cfg.channels, cfg.image_size)
        batch_size, views = clips.shape[:2]
        times, episode = check_time_indices(batch, batch_size)
        embeddings = self._embed_clips(clips.flatten(0, 1)).view(batch_size, views, -1)
        loss = multiview_npairs_loss(embeddings, times, episode, cfg.negative_window, cfg.temperature)
        return loss, multiview_metrics(loss, embeddings.detach(), times, episode, cfg.negative_window)

    @inference
    def embed_clip(self, clips: Tensor) -> Tensor:
        """(N, n, C, H, W) clips in [0, 1], frames oldest first -> (N, embedding_dim) unit-norm embeddings."""
        check_images(clips, 'clips', ('N', self.config.num_frames), self.config.channels, self.config.image_size)
        return self._embed_clips(clips)
