"""The representations an evaluation sets a trained model against, and the chance levels metrics.py does not give.

- random_model: the trained model's architecture, randomly initialised from a fixed seed: what the architecture
  alone, without training, gets from the images.
- Frame embedders: one interface for everything the TCN-family metrics embed, so that every column of a report
  sees the same frames at the same times: the trained (or a baseline) TCN or single-view TCN embedding frames,
  an mfTCN embedding the clip that ends at each time, and raw pixels area-downsampled and flattened.
- alignment_chance: the alignment error of a nearest neighbour drawn uniformly at random.

Frames are (T, S, S, 3) uint8 RGB arrays of one camera view of one episode, S being the embedder's image_size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ssl_robot.images import rgb_to_tensor
from ssl_robot.models.mftcn import MultiFrameTCN
from ssl_robot.models.registry import build_model
from ssl_robot.models.tcn import TCN, SingleViewTCN
from ssl_robot.train.metrics import downsampled_pixels

RANDOM_ENCODER_SEED = 0
"""Seed of the randomly initialised baseline: the same random weights on every evaluation."""


def random_model(method: str, model_config: object, device: torch.device,
                 seed: int = RANDOM_ENCODER_SEED) -> nn.Module:
    """A fresh model of the method and config, initialised from seed, in eval() mode on device. The global torch
    RNG is left as it was, so building the baseline does not change what anything else draws."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(method, model_config)
    return model.to(device).eval()


def images_to_device(frames: np.ndarray, device: torch.device) -> Tensor:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32 in [0, 1] on device, the models' input."""
    return rgb_to_tensor(frames).to(device)


def in_batches(function: Callable[[np.ndarray], Tensor | np.ndarray], inputs: np.ndarray,
               batch_size: int) -> np.ndarray:
    """function applied to consecutive batches of inputs' rows, the results stacked as one float64 array, so a long
    episode never goes through a model at once."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        output = function(inputs[start:start + batch_size])
        outputs.append(output.cpu().numpy() if isinstance(output, Tensor) else output)
    return np.concatenate(outputs).astype(np.float64, copy=False)


class FrameEmbedder(ABC):
    """Embeds one view of an episode at given times."""

    image_size: int
    """Side of the frames it takes."""
    lookback: int = 0
    """Frames before t that the embedding of time t needs; times must be at least this."""

    @abstractmethod
    def embed(self, frames: np.ndarray, times: Sequence[int]) -> np.ndarray:
        """(len(times), D) embeddings of the (T, S, S, 3) uint8 frames of one view at the given times."""

    def _check_times(self, frames: np.ndarray, times: Sequence[int]) -> np.ndarray:
        times = np.asarray(times, dtype=np.int64)
        if len(times) and (times.min() < self.lookback or times.max() >= len(frames)):
            raise ValueError(f'{type(self).__name__} embeds times {self.lookback} to {len(frames) - 1} of these '
                             f'{len(frames)} frames, got {times.min()} to {times.max()}')
        return times


class ModelFrameEmbedder(FrameEmbedder):
    """A TCN or single-view TCN: each frame on its own."""

    def __init__(self, model: TCN | SingleViewTCN, device: torch.device, batch_size: int) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self.image_size = model.config.image_size

    def embed(self, frames: np.ndarray, times: Sequence[int]) -> np.ndarray:
        times = self._check_times(frames, times)
        return in_batches(lambda batch: self.model.embed(images_to_device(batch, self.device)), frames[times],
                          self.batch_size)


class ClipEmbedder(FrameEmbedder):
    """An mfTCN: time t is the clip of num_frames frames, stride apart, that ends at t."""

    def __init__(self, model: MultiFrameTCN, device: torch.device, batch_size: int) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        config = model.config
        self.image_size = config.image_size
        self.lookback = config.lookback_frames - 1
        self.offsets = np.arange(config.num_frames - 1, -1, -1) * config.stride  # oldest frame first

    def embed(self, frames: np.ndarray, times: Sequence[int]) -> np.ndarray:
        times = self._check_times(frames, times)
        # Clips are gathered per batch: gathering every clip at once would copy the episode num_frames times.
        return in_batches(lambda batch: self.model.embed_clip(images_to_device(frames[batch[:, None] - self.offsets],
                                                                               self.device)),
                          times, self.batch_size)


class PixelEmbedder(FrameEmbedder):
    """Raw pixels: each frame area-downsampled to pixel_size x pixel_size and flattened (pixel_size^2 * 3 values).
    Every view is embedded on its own, like the models' views, never several views side by side."""

    def __init__(self, image_size: int, pixel_size: int, batch_size: int) -> None:
        if not 1 <= pixel_size <= image_size:
            raise ValueError(f'raw pixels are downsampled to {pixel_size}x{pixel_size}, which must be from 1 to the '
                             f'{image_size} pixels of the frames')
        self.image_size, self.pixel_size, self.batch_size = image_size, pixel_size, batch_size

    def embed(self, frames: np.ndarray, times: Sequence[int]) -> np.ndarray:
        times = self._check_times(frames, times)
        return in_batches(lambda batch: downsampled_pixels(rgb_to_tensor(batch).numpy(), self.pixel_size),
                          frames[times], self.batch_size)


def model_embedder(model: nn.Module, device: torch.device, batch_size: int) -> FrameEmbedder:
    """The embedder of a TCN-family model: clips for an mfTCN, frames for the others."""
    if isinstance(model, MultiFrameTCN):
        return ClipEmbedder(model, device, batch_size)
    if isinstance(model, (TCN, SingleViewTCN)):
        return ModelFrameEmbedder(model, device, batch_size)
    raise ValueError(f'{type(model).__name__} is not a TCN-family model: only tcn, svtcn and mftcn embed frames')


def alignment_chance(lengths: Sequence[int]) -> float:
    """The alignment error (metrics.mean_alignment_error) when every nearest neighbour is a time drawn uniformly at
    random, averaged over episodes of the given lengths as that function averages: E|t - u| / T over t and u
    uniform in 0..T-1 is (T^2 - 1) / (3 T^2), just under 1/3."""
    if not lengths or min(lengths) < 1:
        raise ValueError(f'alignment_chance needs one length >= 1 per episode, got {list(lengths)}')
    return float(np.mean([(length ** 2 - 1) / (3 * length ** 2) for length in lengths]))
