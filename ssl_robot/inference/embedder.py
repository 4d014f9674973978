"""Embedding live camera frames with a trained TCN-family checkpoint: what the embedding node runs on every
synchronized set of camera images. Pure: no rclpy, so it runs and is tested without ROS.

- FrameBuffer: the recent frames of one view, giving the mfTCN clip that ends at the newest one.
- MultiViewEmbedder: K synchronized views -> K + 1 unit-norm embeddings, one per view and their fusion.

Frames are (H, W, 3) uint8 RGB arrays of any size. They are resized to the model's image_size the way
training resized them (ssl_robot.images.model_pixels: pixel-area averaging, aspect ratio not kept), so
the model sees live frames as it saw recorded ones.

An mfTCN clip is num_frames frames `stride` frames apart, counted in the frames FrameBuffer keeps. Training
counted recorded bag frames (`ssl-robot collect` records every 3rd tick of the 30 Hz sim: 0.1 s apart), so a live
clip spans the trained duration only if the buffer keeps frames as far apart: with clip_frame_period_s it skips
the sets that come sooner after the last one it kept, and no embedding is made for them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_robot.images import model_pixels, rgb_to_tensor
from ssl_robot.models.mftcn import MultiFrameTCN
from ssl_robot.models.registry import TCN_FAMILY, require_family

if TYPE_CHECKING:
    from ssl_robot.inference.model_holder import LoadedModel

def require_embedding_method(method: str) -> None:
    """Refuse a method of another family than the TCNs, which embed camera frames: TCN and its single-view
    baseline frame by frame, mfTCN by clips."""
    require_family(method, TCN_FAMILY, 'embed camera frames')


class FrameBuffer:
    """The last (num_frames - 1) * stride + 1 frames of one view, yielding the mfTCN clip ending at the newest.

    A frame whose stamp is not after the newest buffered one (time went backwards: a simulator reset, a bag
    looping) empties the buffer first, so a clip never mixes two timelines.
    """

    def __init__(self, num_frames: int, stride: int, frame_period_ns: int = 0) -> None:
        if num_frames < 1 or stride < 1:
            raise ValueError(f'a clip needs num_frames >= 1 and stride >= 1, got {num_frames} and {stride}')
        if frame_period_ns < 0:
            raise ValueError(f'frame_period_ns must be >= 0, got {frame_period_ns}')
        self.num_frames, self.stride = num_frames, stride
        # Nominal-rate stamps are not exact multiples (3 ticks of 30 Hz are 99 999 999 ns), hence the 10 % slack.
        self._min_gap_ns = int(frame_period_ns * 0.9)
        self._frames: deque[np.ndarray] = deque(maxlen=(num_frames - 1) * stride + 1)
        self._newest_ns: int | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self._newest_ns = None

    def push(self, stamp_ns: int, frame: np.ndarray) -> np.ndarray | None:
        """Add a frame; once the buffer is full, the (num_frames, ...) clip ending at it, oldest frame first. A frame
        less than the frame period after the newest kept one is skipped (None)."""
        if self._newest_ns is not None and stamp_ns <= self._newest_ns:
            self.clear()
        elif self._newest_ns is not None and stamp_ns - self._newest_ns < self._min_gap_ns:
            return None
        self._frames.append(frame)
        self._newest_ns = stamp_ns
        if len(self._frames) < self._frames.maxlen:
            return None
        return np.stack(list(self._frames)[::self.stride])


def with_fused_row(embeddings: Tensor) -> Tensor:
    """(K, D) unit-norm view embeddings -> (K + 1, D): the views, then their mean re-normalised to unit length
    (a zero row in the degenerate case where the views cancel out)."""
    return torch.cat([embeddings, F.normalize(embeddings.mean(0, keepdim=True), dim=-1)])


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """(K + 1, D) float32: one unit-norm row per view in the order given, then the fused row."""
    model_id: str
    """LoadedCheckpoint.model_id of the model that computed them."""


class MultiViewEmbedder:
    """Synchronized sets of num_views frames -> Embeddings, through a LoadedModel that may be reloaded between
    sets. An mfTCN embeds the clip ending at each set, through one FrameBuffer per view, so it answers only
    once the buffers hold a full clip; the buffers start over if a reload changes the clip or image size.
    clip_frame_period_s spaces the frames of an mfTCN clip as the training bags spaced them (see the module
    docstring); 0 takes every set. TCNs embed every set whatever it says."""

    def __init__(self, model: LoadedModel, num_views: int, clip_frame_period_s: float = 0.0) -> None:
        if num_views < 1:
            raise ValueError(f'num_views must be >= 1, got {num_views}')
        if not (clip_frame_period_s >= 0 and math.isfinite(clip_frame_period_s)):
            raise ValueError(f'clip_frame_period_s must be a finite number >= 0, got {clip_frame_period_s}')
        require_embedding_method(model.method)
        self.model = model
        self.num_views = num_views
        self._frame_period_ns = round(clip_frame_period_s * 1e9)
        self._buffers: list[FrameBuffer] = []
        self._buffer_geometry: tuple[int, int, int] | None = None

    def _clips(self, stamp_ns: int, images: np.ndarray, model: MultiFrameTCN) -> np.ndarray | None:
        config = model.config
        geometry = (config.num_frames, config.stride, config.image_size)
        if geometry != self._buffer_geometry:
            self._buffers = [FrameBuffer(config.num_frames, config.stride, self._frame_period_ns)
                             for _ in range(self.num_views)]
            self._buffer_geometry = geometry
        clips = [buffer.push(stamp_ns, image) for buffer, image in zip(self._buffers, images)]
        return None if any(clip is None for clip in clips) else np.stack(clips)

    def embed(self, stamp_ns: int, frames: Sequence[np.ndarray]) -> Embeddings | None:
        """The embeddings of one synchronized set of frames (one per view, in view order), or None while an
        mfTCN's clips are still filling."""
        if len(frames) != self.num_views:
            raise ValueError(f'expected {self.num_views} views, got {len(frames)}')
        loaded = self.model.current  # one model for the whole set, even if a reload swaps it meanwhile
        model = loaded.model
        images = model_pixels(frames, model.config.image_size)
        # embed() and embed_clip() run under torch.no_grad() in eval() mode (models.encoders.inference).
        if isinstance(model, MultiFrameTCN):
            clips = self._clips(stamp_ns, images, model)
            if clips is None:
                return None
            vectors = model.embed_clip(rgb_to_tensor(clips).to(self.model.device))
        else:
            vectors = model.embed(rgb_to_tensor(images).to(self.model.device))
        return Embeddings(with_fused_row(vectors).cpu().numpy().astype(np.float32, copy=False), loaded.model_id)
