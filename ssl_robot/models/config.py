"""Validation shared by the model configs, and the image-encoder fields every model has.

Every error names the config class, the field and the bad value, e.g.
"TCNConfig.margin must be > 0, got -1", so that a typo in a YAML file points at itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


def _where(config: object, name: str) -> str:
    return f'{type(config).__name__}.{name}'


def require_image_size_divisible(config: object, widths_name: str) -> None:
    """image_size survives len(widths) halvings (or doublings) exactly, one per width of that field."""
    widths = getattr(config, widths_name)
    factor = 2 ** len(widths)
    if config.image_size % factor:
        raise ValueError(
            f'{_where(config, "image_size")} must be divisible by 2 ** len({widths_name}) = {factor} (one stride-2 '
            f'layer per width), got {config.image_size} with {widths_name} {list(widths)}')


def require_int(config: object, name: str, minimum: int) -> None:
    """The field is an int >= minimum (bools are refused: True is not a width)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f'{_where(config, name)} must be an int, got {value!r}')
    if value < minimum:
        raise ValueError(f'{_where(config, name)} must be >= {minimum}, got {value}')


def require_float(config: object, name: str, *, positive: bool) -> None:
    """The field is a real number, > 0 when positive else >= 0; ints are stored back as floats."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f'{_where(config, name)} must be a number, got {value!r}')
    if positive and not value > 0:
        raise ValueError(f'{_where(config, name)} must be > 0, got {value}')
    if not positive and not value >= 0:
        raise ValueError(f'{_where(config, name)} must be >= 0, got {value}')
    object.__setattr__(config, name, float(value))


def require_choice(config: object, name: str, choices: Sequence[str]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f'{_where(config, name)} must be one of {list(choices)}, got {value!r}')


def require_widths(config: object, name: str) -> None:
    """The field is a non-empty sequence of positive ints; lists (from JSON/YAML) become tuples."""
    value = getattr(config, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f'{_where(config, name)} must be a non-empty sequence of ints, got {value!r}')
    if any(isinstance(w, bool) or not isinstance(w, Integral) or w < 1 for w in value):
        raise ValueError(f'{_where(config, name)} must hold ints >= 1, got {list(value)}')
    object.__setattr__(config, name, tuple(int(w) for w in value))


@dataclass
class ImageEncoderConfig:
    """Fields of the image input and the conv encoder, common to every model.

    Images are float tensors in [0, 1], shape (B, channels, image_size, image_size). Each encoder width is one
    stride-2 conv layer, so image_size must be divisible by 2 ** len(encoder_widths).
    """

    image_size: int = 64
    """Side of the square input images, in pixels."""
    channels: int = 3
    """Image channels (3 for RGB)."""
    encoder_widths: tuple[int, ...] = (32, 64, 64, 128)
    """Output channels of the encoder's stride-2 conv layers, first to last."""

    def __post_init__(self) -> None:
        require_int(self, 'image_size', 2)
        require_int(self, 'channels', 1)
        require_widths(self, 'encoder_widths')
        require_image_size_divisible(self, 'encoder_widths')

    @property
    def feature_size(self) -> int:
        """Side of the encoder's output feature map."""
        return self.image_size // 2 ** len(self.encoder_widths)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON-able values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


@dataclass
class EmbeddingConfig(ImageEncoderConfig):
    """An image encoder that ends in an embedding vector."""

    embedding_dim: int = 32
    """Size of the embedding vector."""
    augment_shift_px: int = 0
    """Training only: every input image (every clip, for mfTCN; every pre/post pair, for Grasp2Vec) is shifted by
    up to this many pixels, edges replicated (the random shift of DrQ, Kostrikov et al. 2020), so that a small data
    set cannot be memorised by exact pixel positions. 0 turns it off."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_int(self, 'embedding_dim', 1)
        require_int(self, 'augment_shift_px', 0)
