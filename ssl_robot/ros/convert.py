"""Conversions between ROS messages and numpy arrays (the parts of cv_bridge this stack needs).

image_to_array() returns pixels in the channel order the message stores them (a bgr8 image comes back
as BGR); as_rgb() turns any colour or mono8 image into the HxWx3 RGB uint8 array the models take. Both
only read the fields every sensor_msgs/Image has, so they work on rclpy messages and on messages
deserialized by rosbags alike.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import CameraInfo, Image, JointState

NS_PER_S = 1_000_000_000
_INT32_MAX = 2**31 - 1


class MessageError(ValueError):
    """A message (or an array meant for one) that cannot be used; `kind` names the problem for /diagnostics."""
    kind = 'bad_message'


class ImageFormatError(MessageError):
    """An Image message (or an array meant for one) whose layout does not match its encoding."""
    kind = 'bad_image'


class StampError(MessageError):
    """A builtin_interfaces/Time that is not a time since the epoch (negative sec, nanosec of 1e9 or more), or a
    stamp in ns that Time cannot hold: republishing it would fail."""
    kind = 'bad_stamp'


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


def _encoding(name: str) -> Encoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageFormatError(f'unsupported image encoding {name!r}; supported: {", ".join(ENCODINGS)}') from None


def _pixel_shape(height: int, width: int, channels: int) -> tuple[int, ...]:
    return (height, width) if channels == 1 else (height, width, channels)


def image_to_array(msg, reject_nan: bool = False) -> np.ndarray:
    """The pixels of an Image as a read-only (H, W) or (H, W, C) array in native byte order.

    Row padding (step > width * bytes per pixel) is skipped without copying; big-endian data is
    byte-swapped into a copy. With reject_nan, a float image holding NaN raises ImageFormatError.
    """
    encoding = _encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageFormatError(f'{msg.encoding} image has zero size ({width}x{height})')
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview, array.array, np.ndarray)) \
        else bytes(msg.data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageFormatError(f'{msg.encoding} image {width}x{height} has empty data')
    row_bytes = width * encoding.channels * encoding.dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(f'{msg.encoding} image step {step} is less than width * channels * bytes '
                               f'= {width} * {encoding.channels} * {encoding.dtype.itemsize} = {row_bytes}')
    if buffer.size != step * height:
        raise ImageFormatError(f'{msg.encoding} image data has {buffer.size} bytes, expected step * height '
                               f'= {step} * {height} = {step * height}')
    dtype = encoding.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    shape = _pixel_shape(height, width, encoding.channels)
    strides = (step, encoding.channels * encoding.dtype.itemsize, encoding.dtype.itemsize)[:len(shape)]
    pixels = np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)
    if not dtype.isnative:
        pixels = pixels.astype(encoding.dtype)
    if reject_nan and pixels.dtype.kind == 'f' and np.isnan(pixels).any():
        raise ImageFormatError(f'{msg.encoding} image has {int(np.isnan(pixels).sum())} NaN pixels')
    pixels.setflags(write=False)
    return pixels


def as_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from image_to_array() output of a colour or mono8 image."""
    if encoding in ('rgb8', 'rgba8'):
        return pixels[..., :3]
    if encoding in ('bgr8', 'bgra8'):
        return pixels[..., 2::-1]
    if encoding == 'mono8':
        return np.repeat(pixels[..., None], 3, axis=2)
    raise ImageFormatError(f'{encoding!r} is not a colour or mono8 encoding; cannot make RGB from it')


def array_to_image(pixels: np.ndarray, encoding: str, stamp: Time, frame_id: str) -> Image:
    """An Image holding a copy of pixels ((H, W) or (H, W, C), dtype as the encoding requires)."""
    expected = _encoding(encoding)
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
    height, width = pixels.shape[:2]
    msg = Image(encoding=encoding, height=height, width=width,
                step=width * expected.channels * expected.dtype.itemsize,
                is_bigendian=int(sys.byteorder == 'big'))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    # rclpy stores an array.array('B') as is; any other sequence is checked and copied element by element.
    data = array.array('B')
    data.frombytes(memoryview(np.ascontiguousarray(pixels)).cast('B'))
    msg.data = data
    return msg


def camera_info(K: np.ndarray, width: int, height: int, stamp: Time, frame_id: str) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera with intrinsics K (plumb_bob, zero distortion, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f'K must be a finite 3x3 matrix, got shape {K.shape}: {K.tolist()}')
    if width <= 0 or height <= 0:
        raise ValueError(f'camera size {width}x{height} must be positive')
    msg = CameraInfo(width=int(width), height=int(height), distortion_model='plumb_bob')
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = K.ravel()
    msg.r = np.eye(3).ravel()
    msg.p = np.hstack([K, np.zeros((3, 1))]).ravel()
    return msg


def stamp_to_ns(stamp: Time) -> int:
    """Nanoseconds of a stamp from outside; StampError for one ns_to_stamp could not turn back into a Time (sec < 0,
    nanosec >= 1e9: a Time message's fields are int32 and uint32, so both can arrive)."""
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if not (0 <= sec <= _INT32_MAX and 0 <= nanosec < NS_PER_S):
        raise StampError(f'stamp {{sec: {sec}, nanosec: {nanosec}}} is not a time since the epoch (sec 0 to '
                         f'{_INT32_MAX}, nanosec 0 to {NS_PER_S - 1})')
    return sec * NS_PER_S + nanosec


def ns_to_stamp(stamp_ns: int) -> Time:
    if not 0 <= stamp_ns <= _INT32_MAX * NS_PER_S + NS_PER_S - 1:
        raise StampError(f'stamp {stamp_ns} ns is outside the range of builtin_interfaces/Time '
                         f'(0 to {_INT32_MAX} s)')
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def pose_array(positions: Sequence[Sequence[float]] | np.ndarray,
               orientations_xyzw: Sequence[Sequence[float]] | np.ndarray, stamp: Time, frame_id: str) -> PoseArray:
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3) if len(positions) else np.zeros((0, 3))
    orientations = (np.asarray(orientations_xyzw, dtype=np.float64).reshape(-1, 4) if len(orientations_xyzw)
                    else np.zeros((0, 4)))
    if len(positions) != len(orientations):
        raise ValueError(f'{len(positions)} positions but {len(orientations)} orientations')
    msg = PoseArray()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    for (x, y, z), (qx, qy, qz, qw) in zip(positions.tolist(), orientations.tolist()):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = x, y, z
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = qx, qy, qz, qw
        msg.poses.append(pose)
    return msg


def joint_state(names: Sequence[str], positions: Sequence[float], velocities: Sequence[float],
                efforts: Sequence[float], stamp: Time) -> JointState:
    """A JointState; each of positions, velocities, efforts is empty or has one value per name."""
    msg = JointState(name=list(names))
    msg.header.stamp = stamp
    for field, values in (('position', positions), ('velocity', velocities), ('effort', efforts)):
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size not in (0, len(names)):
            raise ValueError(f'joint_state has {len(names)} names but {values.size} {field} values')
        setattr(msg, field, array.array('d', values.tobytes()))
    return msg
