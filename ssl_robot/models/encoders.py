"""The small conv encoder/decoder shared by all models, and the input checks and helpers around them.

Images are float tensors in [0, 1] with shape (..., C, H, W), H == W == image_size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ModuleMethod = TypeVar('ModuleMethod', bound=Callable)


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """(N, C, H, W) images, each translated by its own random offset of up to max_shift pixels in x and y, the
    edges replicated. Channels of one image move together, so stacking related images on the channel axis
    shifts them alike."""
    if max_shift == 0:
        return images
    count, channels, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode='replicate')
    offsets = torch.randint(0, 2 * max_shift + 1, (count, 2), generator=generator,
                            device=generator.device if generator is not None else 'cpu').to(images.device)
    rows = torch.arange(height, device=images.device)[None, :] + offsets[:, :1]
    cols = torch.arange(width, device=images.device)[None, :] + offsets[:, 1:]
    index = torch.arange(count, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]


LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma of RGB, the grey level that contrast and saturation jitter blend towards (as torchvision)."""


def _uniform(count: int, low: Tensor | float, high: Tensor | float, images: Tensor,
             generator: torch.Generator | None) -> Tensor:
    """(count,) values drawn uniformly from [low, high), from generator (on its device) and moved to images'."""
    device = generator.device if generator is not None else 'cpu'
    unit = torch.rand(count, generator=generator, device=device).to(images.device)
    return low + (high - low) * unit


def _luma(images: Tensor) -> Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) grey level."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
    return torch.einsum('nchw,c->nhw', images, weights)[:, None]


def color_jitter(images: Tensor, brightness: float, contrast: float, saturation: float,
                 generator: torch.Generator | None = None) -> Tensor:
    """(N, 3, H, W) RGB images in [0, 1], each with its own random brightness, contrast and saturation, in that
    order and as torchvision's ColorJitter defines them: a factor f drawn uniformly from [1 - s, 1 + s] for each
    strength s scales the image (brightness), or its difference from its mean grey level (contrast) or from each
    pixel's grey level (saturation); the result is clipped to [0, 1] after each. A strength of 0 leaves that
    property alone. Images of one call get independent factors, so synchronized views jittered together still
    differ in colour."""
    count = images.shape[0]
    if brightness:
        factor = _uniform(count, 1 - brightness, 1 + brightness, images, generator)
        images = (images * factor[:, None, None, None]).clamp(0, 1)
    if contrast:
        factor = _uniform(count, 1 - contrast, 1 + contrast, images, generator)[:, None, None, None]
        mean = _luma(images).mean(dim=(2, 3), keepdim=True)
        images = (mean + factor * (images - mean)).clamp(0, 1)
    if saturation:
        factor = _uniform(count, 1 - saturation, 1 + saturation, images, generator)[:, None, None, None]
        grey = _luma(images)
        images = (grey + factor * (images - grey)).clamp(0, 1)
    return images


CROP_ASPECT_RATIOS = (3 / 4, 4 / 3)
"""Aspect ratios (width / height) of random resized crops, as in Inception and SimCLR."""


def random_resized_crop(images: Tensor, min_scale: float, generator: torch.Generator | None = None) -> Tensor:
    """(N, C, H, W) images, each replaced by a random crop of its own resized back to H x W (bilinear): the crop
    covers a fraction of the image drawn uniformly from [min_scale, 1], its log aspect ratio (width / height, as
    fractions of the image's) is uniform over CROP_ASPECT_RATIOS, narrowed where a side would not fit, and its
    place is uniform over the positions inside the image. Channels of one image are cropped alike. min_scale 1
    is off."""
    if min_scale >= 1:
        return images
    count = images.shape[0]
    area = _uniform(count, min_scale, 1.0, images, generator)
    low, high = (math.log(ratio) for ratio in CROP_ASPECT_RATIOS)
    # A side fits when area <= ratio <= 1 / area; clamping the ratio rather than a side keeps the drawn area.
    ratio = _uniform(count, low, high, images, generator).exp().clamp(min=area, max=1 / area)
    # Sides and centre in affine_grid's coordinates, where the image spans [-1, 1] on each axis.
    width, height = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    x = _uniform(count, width - 1, 1 - width, images, generator)
    y = _uniform(count, height - 1, 1 - height, images, generator)
    theta = torch.zeros(count, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width, x, height, y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='border', align_corners=False)


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def inference(method: ModuleMethod) -> ModuleMethod:
    """Run a module method without autograd and in eval() mode, restoring the caller's mode afterwards,
    so a validation call in the middle of training neither builds a graph nor leaves the model in eval()."""

    @functools.wraps(method)
    @torch.no_grad()
    def run_in_eval_mode(module: nn.Module, *args, **kwargs):
        if not module.training:
            # Switching modes walks every submodule, which costs about as much as a small model's forward pass on
            # one image: a model loaded for inference (eval() already) skips it.
            return method(module, *args, **kwargs)
        module.eval()
        try:
            return method(module, *args, **kwargs)
        finally:
            module.train()

    return run_in_eval_mode  # type: ignore[return-value]


def require_keys(batch: Mapping[str, Tensor], keys: Sequence[str], owner: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f'{owner} batch is missing {missing}: expected keys {list(keys)}, got {sorted(batch)}')


def check_images(images: Tensor, name: str, leading: Sequence[str | int], channels: int, image_size: int) -> None:
    """Raise a ValueError naming `name` unless images is a float tensor in [0, 1] of shape
    (*leading, channels, image_size, image_size); string entries of `leading` match any size."""
    expected = (*leading, channels, image_size, image_size)
    shape_ok = images.dim() == len(expected) and all(
        isinstance(want, str) or got == want for got, want in zip(images.shape, expected))
    if not shape_ok:
        raise ValueError(f'{name} must have shape ({", ".join(map(str, expected))}), got {tuple(images.shape)}')
    if not images.is_floating_point():
        raise ValueError(f'{name} must be a float tensor with values in [0, 1], got dtype {images.dtype}')
    if images.numel():
        low, high = torch.aminmax(images)
        if low < 0 or high > 1:
            raise ValueError(
                f'{name} must hold values in [0, 1], got range [{low.item():.4g}, {high.item():.4g}] '
                f'(uint8 images need dividing by 255)')


def check_same_rows(tensors: Mapping[str, Tensor]) -> None:
    """Raise a ValueError naming them unless the named tensors have the same first dimension (rows pair up)."""
    rows = {name: tensor.shape[0] for name, tensor in tensors.items()}
    if len(set(rows.values())) > 1:
        listing = ', '.join(f'{name}: {count}' for name, count in rows.items())
        raise ValueError(f'{", ".join(rows)} must pair up row by row, got rows {listing}')


def check_indices(values: Tensor, name: str, batch_size: int) -> None:
    """Raise a ValueError naming `name` unless values is an integer tensor of shape (batch_size,)."""
    if values.shape != (batch_size,) or values.is_floating_point() or values.dtype == torch.bool:
        raise ValueError(
            f'{name} must be an integer tensor of shape ({batch_size},), got {values.dtype} {tuple(values.shape)}')


def _group_norm(width: int) -> nn.GroupNorm:
    # GroupNorm rather than BatchNorm: TCN batches mix views and episodes in small batches, and the
    # outputs must not depend on what else is in the batch or on train/eval mode.
    return nn.GroupNorm(math.gcd(8, width), width)


class ConvEncoder(nn.Module):
    """3x3 convolutions with GroupNorm and ReLU, stride 2 for each of widths, then stride 1 for each of
    stride_one_widths: (B, C, S, S) -> (B, last width, S/2^L, S/2^L) for L = len(widths)."""

    def __init__(self, in_channels: int, widths: Sequence[int], stride_one_widths: Sequence[int] = ()):
        super().__init__()
        layers: list[nn.Module] = []
        strides = [2] * len(widths) + [1] * len(stride_one_widths)
        for width, stride in zip([*widths, *stride_one_widths], strides):
            layers += [nn.Conv2d(in_channels, width, 3, stride=stride, padding=1), _group_norm(width), nn.ReLU()]
            in_channels = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)


class ConvDecoder(nn.Module):
    """A vector -> image logits (B, out_channels, S, S).

    A linear layer makes a (widths[0], S/2^L, S/2^L) map, then L stride-2 transposed convolutions double it
    through widths[1:] to out_channels. Apply a sigmoid to the logits for an image in [0, 1].
    """

    def __init__(self, input_dim: int, widths: Sequence[int], out_channels: int, image_size: int):
        super().__init__()
        self.base_channels = widths[0]
        self.base_size = image_size // 2 ** len(widths)
        self.project = nn.Linear(input_dim, widths[0] * self.base_size ** 2)
        layers: list[nn.Module] = []
        channels = [*widths, out_channels]
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers += [_group_norm(c_out), nn.ReLU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, vectors: Tensor) -> Tensor:
        base = F.relu(self.project(vectors)).view(-1, self.base_channels, self.base_size, self.base_size)
        return self.layers(base)


class ImageVectorEncoder(nn.Module):
    """An image, optionally with a conditioning vector, -> a vector: ConvEncoder, flatten, concatenate the
    condition, linear. Flattening (not pooling) keeps where things are in the image, which control needs."""

    def __init__(self, channels: int, widths: Sequence[int], image_size: int, out_dim: int, condition_dim: int = 0):
        super().__init__()
        self.encoder = ConvEncoder(channels, widths)
        feature_size = image_size // 2 ** len(widths)
        self.condition_dim = condition_dim
        self.project = nn.Linear(self.encoder.out_channels * feature_size ** 2 + condition_dim, out_dim)

    def forward(self, images: Tensor, condition: Tensor | None = None) -> Tensor:
        """(N, C, S, S) and, when built with condition_dim > 0, (N, condition_dim) -> (N, out_dim)."""
        features = self.encoder(images).flatten(1)
        if (condition is None) != (self.condition_dim == 0):
            raise ValueError(f'this encoder takes a condition of size {self.condition_dim}, got '
                             f'{None if condition is None else tuple(condition.shape)}')
        if condition is not None:
            features = torch.cat([features, condition], dim=1)
        return self.project(features)
