"""Decoders of the learning nodes' inputs (ssl_robot.ros.decoders, ssl_robot.ros.convert): camera images, stamps, goal
latents, rewards. Each returns a valid value or raises its documented error (MessageError and its kinds), never anything
else. Pure: messages are built here, no ROS graph."""

from __future__ import annotations

import array

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Vector3Stamped
from hypothesis import given, settings, strategies as st
from sensor_msgs.msg import Image

from ssl_robot.images import ENCODINGS
from ssl_robot.ros.convert import (ImageFormatError, MessageError, StampError, array_to_image, image_to_array,
                                   ns_to_stamp, stamp_to_ns)
from ssl_robot.ros.decoders import (MAX_GOAL_LATENT_ABS, GoalLatentError, RewardError, float_values, goal_latent,
                                    rgb_frame, stamped_reward)

S = 1_000_000_000
FUZZ = settings(max_examples=150, deadline=None)
INT32, UINT32 = (-2**31, 2**31 - 1), (0, 2**32 - 1)


def stamp(sec: int, nanosec: int) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def test_stamps_outside_the_epoch_range_are_stamp_errors():
    assert stamp_to_ns(stamp(12, 345)) == 12 * S + 345
    with pytest.raises(StampError, match=r'stamp \{sec: -1, nanosec: 0\} is not a time since the epoch'):
        stamp_to_ns(stamp(-1, 0))
    with pytest.raises(StampError, match='nanosec: 1000000000'):
        stamp_to_ns(stamp(1, S))
    assert StampError('x').kind == 'bad_stamp' and issubclass(StampError, MessageError)


def test_an_image_with_a_negative_stamp_is_refused_where_it_comes_in():
    message = array_to_image(np.zeros((2, 2, 3), np.uint8), 'rgb8', ns_to_stamp(0), 'cam')
    message.header.stamp = stamp(-5, 0)
    with pytest.raises(StampError):
        rgb_frame(message)


def test_goal_latents_must_be_one_finite_latent_of_the_models_size_within_range():
    goal = np.array([[0.5, -1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(goal_latent(array_to_image(goal, '32FC1', ns_to_stamp(S), 'vae'), 3), goal[0])
    for bad, problem in ((goal * 0 + 3e38, 'a component is 3e\\+38, beyond the \\+-1000'),
                         (np.full((1, 3), np.inf, np.float32), '3 of its 3 values are NaN or infinite'),
                         (goal[:, :2], r'shape is \(1, 2\), not \(1, 3\)'),
                         (np.vstack([goal, goal]), r'shape is \(2, 3\), not \(1, 3\)')):
        with pytest.raises(GoalLatentError, match=problem):
            goal_latent(array_to_image(bad.astype(np.float32), '32FC1', ns_to_stamp(S), 'vae'), 3)
    assert goal_latent(array_to_image(goal * 0 + MAX_GOAL_LATENT_ABS, '32FC1', ns_to_stamp(S), 'vae'), 3).shape == (3,)


def test_float_values_take_finite_32fc1_only():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(float_values(array_to_image(values, '32FC1', ns_to_stamp(0), 'm')), values)
    values[1, 2] = np.inf
    with pytest.raises(ImageFormatError, match='1 of its 6 values are NaN or infinite'):
        float_values(array_to_image(values, '32FC1', ns_to_stamp(0), 'm'))
    with pytest.raises(ImageFormatError, match="encoding is 'mono8', not 32FC1"):
        float_values(array_to_image(np.zeros((2, 3), np.uint8), 'mono8', ns_to_stamp(0), 'm'))


# --- fuzzing ------------------------------------------------------------------------------------------------------

@st.composite
def image_messages(draw, encodings=st.sampled_from([*ENCODINGS, 'yuv422', ''])) -> Image:
    """Image messages with any header and layout fields, whose data is sometimes the size the layout asks for."""
    message = Image(encoding=draw(encodings), height=draw(st.integers(0, 9) | st.integers(*UINT32)),
                    width=draw(st.integers(0, 9) | st.integers(*UINT32)), step=draw(st.integers(0, 80) |
                                                                                    st.integers(*UINT32)),
                    is_bigendian=draw(st.integers(0, 255)))
    message.header.stamp = stamp(draw(st.integers(*INT32)), draw(st.integers(*UINT32)))
    fitting = message.step * message.height if message.step * message.height <= 4096 else 0
    size = draw(st.sampled_from([fitting, 0]) | st.integers(0, 300))
    message.data = array.array('B', draw(st.binary(min_size=size, max_size=size)))
    return message


@FUZZ
@given(image_messages())
def test_any_image_message_decodes_to_rgb_or_raises_message_error(message):
    try:
        frame = rgb_frame(message)
    except MessageError:
        return
    assert frame.rgb.dtype == np.uint8 and frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3
    assert frame.rgb.shape[:2] == (message.height, message.width) and 0 <= frame.stamp_ns
    assert ns_to_stamp(frame.stamp_ns) == message.header.stamp  # a decoded stamp can be published again


@FUZZ
@given(image_messages())
def test_any_image_message_decodes_to_its_pixels_or_raises_image_format_error(message):
    try:
        pixels = image_to_array(message, reject_nan=True)
    except ImageFormatError:
        return
    assert pixels.shape[:2] == (message.height, message.width) and pixels.dtype == ENCODINGS[message.encoding].dtype


@FUZZ
@given(image_messages(st.sampled_from(['32FC1', 'mono8'])) | st.builds(
    lambda values, sec: array_to_image(np.array(values, np.float32).reshape(1, -1), '32FC1', stamp(sec, 0), 'vae'),
    st.lists(st.floats(width=32), min_size=1, max_size=6), st.integers(*INT32)), st.integers(1, 6))
def test_any_goal_latent_message_decodes_to_a_bounded_latent_or_raises_message_error(message, latent_dim):
    try:
        latent = goal_latent(message, latent_dim)
    except MessageError:
        return
    assert latent.shape == (latent_dim,) and np.all(np.abs(latent) <= MAX_GOAL_LATENT_ABS)


@FUZZ
@given(st.integers(*INT32), st.integers(*UINT32))
def test_any_stamp_converts_to_ns_that_convert_back_or_raises_stamp_error(sec, nanosec):
    try:
        stamp_ns = stamp_to_ns(stamp(sec, nanosec))
    except StampError:
        assert sec < 0 or nanosec >= S
        return
    assert ns_to_stamp(stamp_ns) == stamp(sec, nanosec)


def reward_message(sec: int, nanosec: int, reward: float, distance: float, model_id: str = 'betavae:m:step1:abc'
                   ) -> Vector3Stamped:
    message = Vector3Stamped()
    message.header.stamp, message.header.frame_id = stamp(sec, nanosec), model_id
    message.vector.x, message.vector.y = reward, distance
    return message


def test_a_reward_keeps_its_stamp_values_and_model_id_and_a_non_finite_one_is_a_reward_error():
    assert tuple(stamped_reward(reward_message(3, 5, -0.25, 0.5))) == (3 * S + 5, -0.25, 0.5, 'betavae:m:step1:abc')
    # A broken reward publisher must not reach the learner of a RosGoalEnv: its updates would turn NaN.
    for x, y, named in ((float('nan'), 0.5, r'reward \(vector.x\) is nan'), (-1.0, float('inf'), 'distance'),
                        (float('-inf'), float('nan'), 'reward')):
        with pytest.raises(RewardError, match=named):
            stamped_reward(reward_message(3, 5, x, y))
    assert RewardError('x').kind == 'bad_reward' and issubclass(RewardError, MessageError)
    with pytest.raises(StampError):
        stamped_reward(reward_message(-1, 0, -0.25, 0.5))


@FUZZ
@given(st.integers(*INT32), st.integers(*UINT32), st.floats(), st.floats())
def test_any_reward_message_decodes_to_finite_values_or_raises_message_error(sec, nanosec, reward, distance):
    try:
        decoded = stamped_reward(reward_message(sec, nanosec, reward, distance))
    except MessageError:
        return
    assert np.isfinite([decoded.reward, decoded.distance]).all() and decoded.stamp_ns >= 0
