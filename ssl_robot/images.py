"""The one image pipeline, from the bytes of a sensor_msgs/Image to the tensor a model takes, for live frames and
recorded ones alike, so training, evaluation and serving see the same pixels.

- decode_pixels(): the pixels of an encoding's bytes (row padding skipped, byte order made native);
- to_rgb(), to_labels(): colour images as (H, W, 3) uint8 RGB, segmentations as (H, W) uint16 labels;
- pixel_layout(): an array checked against the encoding it is to be sent as, with its row size;
- resize_rgb(), resize_labels(): the resizing training uses (pixel-area averaging; nearest for labels);
- rgb_to_tensor(), model_pixels(), model_input(): the models' input.

Pure numpy and OpenCV: the message fields are read by the callers (ros.convert for live messages, data.reader for
deserialized bag messages). torch is imported by the functions that make tensors only, since the ROS conversion of
every node imports this module and most nodes run no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch


class ImageFormatError(ValueError):
    """Pixels (or an array meant for them) whose layout does not match their encoding, or an unsupported encoding."""


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype
    channels: int


ENCODINGS: dict[str, Encoding] = {
    'rgb8': Encoding(np.dtype(np.uint8), 3),
    'bgr8': Encoding(np.dtype(np.uint8), 3),
    'rgba8': Encoding(np.dtype(np.uint8), 4),
    'bgra8': Encoding(np.dtype(np.uint8), 4),
    'mono8': Encoding(np.dtype(np.uint8), 1),
    'mono16': Encoding(np.dtype(np.uint16), 1),
    '16UC1': Encoding(np.dtype(np.uint16), 1),
    '32SC1': Encoding(np.dtype(np.int32), 1),
    '32FC1': Encoding(np.dtype(np.float32), 1),
}
COLOUR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
"""The encodings to_rgb() turns into RGB: a camera may publish any of them."""
LABEL_ENCODINGS = ('16UC1', 'mono16')
"""The encodings of segmentation images (object index + 1, 0 = background)."""


def encoding_of(name: str) -> Encoding:
    """The pixel type and channel count of an encoding; ImageFormatError naming it if it is not supported."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageFormatError(f'unsupported image encoding {name!r}; supported: {", ".join(ENCODINGS)}') from None


def _pixel_shape(height: int, width: int, channels: int) -> tuple[int, ...]:
    return (height, width) if channels == 1 else (height, width, channels)


def decode_pixels(encoding: str, height: int, width: int, step: int, big_endian: bool, data,
                  reject_nan: bool = False) -> np.ndarray:
    """The pixels of an image's data bytes as a read-only (H, W) or (H, W, C) array in native byte order.

    data: any buffer of step * height bytes. Row padding (step > width * bytes per pixel) is skipped without
    copying; big-endian data is byte-swapped into a copy. With reject_nan, a float image holding NaN raises
    ImageFormatError.
    """
    layout = encoding_of(encoding)
    if height == 0 or width == 0:
        raise ImageFormatError(f'{encoding} image has zero size ({width}x{height})')
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageFormatError(f'{encoding} image {width}x{height} has empty data')
    row_bytes = width * layout.channels * layout.dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(f'{encoding} image step {step} is less than width * channels * bytes '
                               f'= {width} * {layout.channels} * {layout.dtype.itemsize} = {row_bytes}')
    if buffer.size != step * height:
        raise ImageFormatError(f'{encoding} image data has {buffer.size} bytes, expected step * height '
                               f'= {step} * {height} = {step * height}')
    dtype = layout.dtype.newbyteorder('>' if big_endian else '<')
    shape = _pixel_shape(height, width, layout.channels)
    strides = (step, layout.channels * layout.dtype.itemsize, layout.dtype.itemsize)[:len(shape)]
    pixels = np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)
    if not dtype.isnative:
        pixels = pixels.astype(layout.dtype)
    if reject_nan and pixels.dtype.kind == 'f' and np.isnan(pixels).any():
        raise ImageFormatError(f'{encoding} image has {int(np.isnan(pixels).sum())} NaN pixels')
    pixels.setflags(write=False)
    return pixels


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from decode_pixels() output of a colour or mono8 image; a view where it can be."""
    if encoding in ('rgb8', 'rgba8'):
        return pixels[..., :3]
    if encoding in ('bgr8', 'bgra8'):
        return pixels[..., 2::-1]
    if encoding == 'mono8':
        return np.repeat(pixels[..., None], 3, axis=2)
    raise ImageFormatError(f'image encoding {encoding!r} is not a colour encoding ({", ".join(COLOUR_ENCODINGS)}); '
                           f'cannot make RGB from it')


def to_labels(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) uint16 labels from decode_pixels() output of a segmentation image."""
    if encoding not in LABEL_ENCODINGS:
        raise ImageFormatError(f'segmentation encoding {encoding!r} is not one of {", ".join(LABEL_ENCODINGS)}')
    return pixels


def pixel_layout(pixels: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """pixels ((H, W) or (H, W, C), of the encoding's dtype) as a C-contiguous array, with its row size in bytes
    (an Image's step); ImageFormatError naming what does not fit the encoding."""
    expected = encoding_of(encoding)
    pixels = np.asarray(pixels)
    if pixels.dtype != expected.dtype:
        raise ImageFormatError(f'array dtype {pixels.dtype} does not match encoding {encoding} ({expected.dtype})')
    if expected.channels == 1 and pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != (2 if expected.channels == 1 else 3) or pixels.shape[2:] not in ((), (expected.channels,)):
        raise ImageFormatError(f'array shape {pixels.shape} does not fit encoding {encoding} '
                               f'({expected.channels} channel{"s" if expected.channels > 1 else ""})')
    if pixels.size == 0:
        raise ImageFormatError(f'array shape {pixels.shape} has zero size')
    return np.ascontiguousarray(pixels), pixels.shape[1] * expected.channels * expected.dtype.itemsize


def _check_size(image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f'image_size must be an int >= 1, got {image_size!r}')


def resize_rgb(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """rgb resized to image_size x image_size by pixel-area averaging (the aspect ratio is not kept)."""
    _check_size(image_size)
    if rgb.shape[:2] == (image_size, image_size):
        return rgb
    return cv2.resize(rgb, (image_size, image_size), interpolation=cv2.INTER_AREA)


def resize_labels(labels: np.ndarray, image_size: int) -> np.ndarray:
    """Labels resized by nearest neighbour, since averaging object indices would invent objects."""
    _check_size(image_size)
    if labels.shape == (image_size, image_size):
        return labels
    return cv2.resize(labels, (image_size, image_size), interpolation=cv2.INTER_NEAREST)


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1], the layout the models take."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(255.0).contiguous()


def model_pixels(frames: Sequence[np.ndarray], image_size: int) -> np.ndarray:
    """(K, image_size, image_size, 3) uint8: each (H, W, 3) uint8 RGB frame resized as training resized it."""
    for view, frame in enumerate(frames):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f'view {view} must be an (H, W, 3) uint8 RGB image, got {frame.dtype} {frame.shape}')
    return np.stack([resize_rgb(frame, image_size) for frame in frames])


def model_input(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """(1, 3, image_size, image_size) float32 in [0, 1]: one (H, W, 3) uint8 RGB frame as the models were trained
    to see it."""
    return rgb_to_tensor(model_pixels([frame], image_size))
