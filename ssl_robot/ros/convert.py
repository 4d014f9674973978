"""Conversions between ROS messages and numpy arrays (the parts of cv_bridge this stack needs).

Only the message fields are handled here; what the pixel bytes of an encoding mean is ssl_robot.images', the one
image module the bag reader uses too. image_to_array() returns pixels in the channel order the message stores them
(a bgr8 image comes back as BGR); as_rgb() turns any colour or mono8 image into the HxWx3 RGB uint8 array the
models take. Both only read the fields every sensor_msgs/Image has, so they work on rclpy messages and on messages
deserialized by rosbags alike.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import CameraInfo, Image, JointState

from ssl_robot import images

NS_PER_S = 1_000_000_000
_INT32_MAX = 2**31 - 1


class MessageError(ValueError):
    """A message (or an array meant for one) that cannot be used; `kind` names the problem for /diagnostics."""
    kind = 'bad_message'


class ImageFormatError(MessageError, images.ImageFormatError):
    """An Image message (or an array meant for one) whose layout does not match its encoding: the image module's
    error, raised again as a MessageError so that a node's one `except MessageError` covers its images too."""
    kind = 'bad_image'


class StampError(MessageError):
    """A builtin_interfaces/Time that is not a time since the epoch (negative sec, nanosec of 1e9 or more), or a
    stamp in ns that Time cannot hold: republishing it would fail."""
    kind = 'bad_stamp'


@contextmanager
def _as_message_error() -> Iterator[None]:
    try:
        yield
    except images.ImageFormatError as error:
        raise ImageFormatError(str(error)) from None


def image_to_array(msg, reject_nan: bool = False) -> np.ndarray:
    """The pixels of an Image as a read-only (H, W) or (H, W, C) array in native byte order (images.decode_pixels:
    row padding skipped without copying; with reject_nan, a float image holding NaN is refused)."""
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview, array.array, np.ndarray)) \
        else bytes(msg.data)
    with _as_message_error():
        return images.decode_pixels(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                                    bool(msg.is_bigendian), data, reject_nan)


def as_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from image_to_array() output of a colour or mono8 image (images.to_rgb)."""
    with _as_message_error():
        return images.to_rgb(pixels, encoding)


def array_to_image(pixels: np.ndarray, encoding: str, stamp: Time, frame_id: str) -> Image:
    """An Image holding a copy of pixels ((H, W) or (H, W, C), dtype as the encoding requires)."""
    with _as_message_error():
        pixels, step = images.pixel_layout(pixels, encoding)
    msg = Image(encoding=encoding, height=pixels.shape[0], width=pixels.shape[1], step=step,
                is_bigendian=int(sys.byteorder == 'big'))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    # rclpy stores an array.array('B') as is; any other sequence is checked and copied element by element.
    data = array.array('B')
    data.frombytes(memoryview(pixels).cast('B'))
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
