"""Decoders of the messages the learning nodes and RosGoalEnv take from outside: camera images, float arrays
(embeddings), goal latents, rewards. Pure (no rclpy node): each returns a valid value or raises convert.MessageError (a
ValueError) whose `kind` names the problem for /diagnostics (bad_image, bad_stamp, ...), never anything else, so a node
reports one exception type and keeps running. Stamps are checked by convert.stamp_to_ns: a stamp a node could not
publish again is refused here, where the message comes in, not where an output would carry it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import Image

from ssl_robot.ros.convert import ImageFormatError, MessageError, as_rgb, image_to_array, stamp_to_ns

MAX_GOAL_LATENT_ABS = 1e3
"""The largest |z| component a goal latent may have. A VAE's posterior means and its prior samples z ~ N(0, I) lie
within a few units of 0 (a prior sample beyond 10 has probability ~1e-23 per component); a goal a thousand units out
is not in the model's latent space, and its distances would swamp every reward (3e38 squared is infinite in float32)."""


class GoalLatentError(MessageError):
    """A /goal/latent message that is not one finite latent of the model's size within MAX_GOAL_LATENT_ABS."""
    kind = 'bad_goal'


class RewardError(MessageError):
    """A /reward/<kind> message whose reward or distance is NaN or infinite."""
    kind = 'bad_reward'


class RgbFrame(NamedTuple):
    stamp_ns: int
    rgb: np.ndarray
    """(H, W, 3) uint8 RGB pixels, read-only, viewing the message's buffer (copy to keep them past the callback)."""
    frame_id: str


def rgb_frame(message: Image) -> RgbFrame:
    """The stamp and RGB pixels of a colour or mono8 camera image; MessageError if either is unusable."""
    stamp_ns = stamp_to_ns(message.header.stamp)
    return RgbFrame(stamp_ns, as_rgb(image_to_array(message, reject_nan=True), message.encoding),
                    message.header.frame_id)


def float_values(message: Image) -> np.ndarray:
    """The values of a 32FC1 image; ImageFormatError for another encoding, or for NaN or infinite values."""
    if message.encoding != '32FC1':
        raise ImageFormatError(f'encoding is {message.encoding!r}, not 32FC1')
    values = image_to_array(message)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ImageFormatError(f'{bad} of its {values.size} values are NaN or infinite')
    return values


def goal_latent(message: Image, latent_dim: int | None = None) -> np.ndarray:
    """The goal of a /goal/latent or /goal/object_embedding message (32FC1, 1 x latent_dim; any width >= 1 when
    latent_dim is None, the width of the model that made it); GoalLatentError if it is not a usable one (MessageError
    with kind bad_stamp for a bad stamp)."""
    stamp_to_ns(message.header.stamp)
    try:
        values = float_values(message)
    except ImageFormatError as error:
        raise GoalLatentError(str(error)) from None
    width = latent_dim if latent_dim is not None else values.shape[1]
    if values.shape != (1, width):
        raise GoalLatentError(f'shape is {values.shape}, not (1, {"D" if latent_dim is None else latent_dim}): a '
                              f"goal is one latent of the model's size")
    largest = float(np.abs(values).max())
    if largest > MAX_GOAL_LATENT_ABS:
        raise GoalLatentError(f'a component is {largest:g}, beyond the +-{MAX_GOAL_LATENT_ABS:g} of any latent the '
                              f'model makes')
    return values[0]


class StampedReward(NamedTuple):
    stamp_ns: int
    reward: float
    """vector.x: the reward, scaled by the reward node's <kind>_scale."""
    distance: float
    """vector.y: the unscaled distance the reward was computed from."""
    model_id: str


def stamped_reward(message: Vector3Stamped) -> StampedReward:
    """The reward of a /reward/<kind> message; RewardError if its reward or distance is not finite (a learner fed
    one would diverge), MessageError with kind bad_stamp for a bad stamp."""
    stamp_ns = stamp_to_ns(message.header.stamp)
    values = {'reward (vector.x)': float(message.vector.x), 'distance (vector.y)': float(message.vector.y)}
    for name, value in values.items():
        if not np.isfinite(value):
            raise RewardError(f'{name} is {value}')
    return StampedReward(stamp_ns, *values.values(), message.header.frame_id)
