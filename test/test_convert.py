import array
import time

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from ssl_robot import images
from ssl_robot.images import ENCODINGS
from ssl_robot.ros.convert import (
    ImageFormatError,
    MessageError,
    array_to_image,
    as_rgb,
    camera_info,
    image_to_array,
    joint_state,
    ns_to_stamp,
    pose_array,
    stamp_to_ns,
)

STAMP = ns_to_stamp(12 * 10**9 + 345)


def random_pixels(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    spec = ENCODINGS[encoding]
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    rng = np.random.default_rng(seed)
    if spec.dtype.kind == 'f':
        return rng.normal(size=shape).astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=spec.dtype, endpoint=True)


def padded(msg: Image, extra: int, big_endian: bool = False) -> Image:
    """msg re-laid out with `extra` junk bytes after every row, optionally byte-swapped."""
    pixels = image_to_array(msg)
    if big_endian:
        pixels = pixels.astype(pixels.dtype.newbyteorder('>'))
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(msg.height, -1)
    junk = np.full((msg.height, extra), 0xAB, dtype=np.uint8)
    out = Image(height=msg.height, width=msg.width, encoding=msg.encoding, is_bigendian=int(big_endian),
                step=msg.step + extra)
    out.data = array.array('B', np.hstack([rows, junk]).tobytes())
    return out


@pytest.mark.parametrize('encoding', ENCODINGS)
def test_round_trip_through_serialization(encoding):
    pixels = random_pixels(encoding)
    msg = array_to_image(pixels, encoding, STAMP, 'cam')
    assert (msg.height, msg.width) == pixels.shape[:2]
    assert msg.step == pixels.shape[1] * pixels[0, 0].nbytes
    assert msg.header.frame_id == 'cam' and stamp_to_ns(msg.header.stamp) == stamp_to_ns(STAMP)
    back = image_to_array(deserialize_message(serialize_message(msg), Image))
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize('encoding', ENCODINGS)
@pytest.mark.parametrize('big_endian', [False, True])
def test_padded_rows_and_byte_order(encoding, big_endian):
    pixels = random_pixels(encoding, seed=1)
    msg = padded(array_to_image(pixels, encoding, STAMP, 'cam'), extra=3, big_endian=big_endian)
    back = image_to_array(msg)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


def test_returned_array_is_read_only():
    back = image_to_array(array_to_image(random_pixels('rgb8'), 'rgb8', STAMP, 'cam'))
    with pytest.raises(ValueError):
        back[0, 0, 0] = 1


def test_single_channel_array_with_trailing_axis_is_accepted():
    pixels = random_pixels('mono16')
    msg = array_to_image(pixels[..., None], 'mono16', STAMP, 'cam')
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_message_with_bytes_data_as_rosbags_deserializes_it():
    pixels = random_pixels('32FC1')
    msg = array_to_image(pixels, '32FC1', STAMP, 'cam')
    msg_like = type('RosbagsImage', (), dict(height=msg.height, width=msg.width, encoding=msg.encoding,
                                             is_bigendian=msg.is_bigendian, step=msg.step,
                                             data=np.frombuffer(bytes(msg.data), dtype=np.uint8)))
    np.testing.assert_array_equal(image_to_array(msg_like), pixels)


def test_as_rgb_reorders_colour_and_expands_mono():
    rgb = random_pixels('rgb8')
    for encoding, stored in [('rgb8', rgb), ('bgr8', rgb[..., ::-1]),
                             ('rgba8', np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
                             ('bgra8', np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)]))]:
        msg = array_to_image(stored, encoding, STAMP, 'cam')
        np.testing.assert_array_equal(as_rgb(image_to_array(msg), encoding), rgb)
    mono = random_pixels('mono8')
    np.testing.assert_array_equal(as_rgb(mono, 'mono8'), np.dstack([mono] * 3))
    with pytest.raises(ImageFormatError, match='16UC1'):
        as_rgb(random_pixels('16UC1'), '16UC1')


def good_message() -> Image:
    return array_to_image(random_pixels('rgb8'), 'rgb8', STAMP, 'cam')


@pytest.mark.parametrize('change, message', [
    ({'encoding': 'yuv422'}, "unsupported image encoding 'yuv422'"),
    ({'data': array.array('B')}, 'empty data'),
    ({'step': 20}, r'step 20 is less than width \* channels \* bytes = 7 \* 3 \* 1 = 21'),
    ({'step': 22}, 'data has 105 bytes, expected step'),
    ({'data': array.array('B', bytes(104))}, 'data has 104 bytes'),
    ({'height': 0}, r'zero size \(7x0\)'),
    ({'width': 0}, r'zero size \(0x5\)'),
])
def test_malformed_image_is_rejected_with_a_clear_message(change, message):
    msg = good_message()
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ImageFormatError, match=message):
        image_to_array(msg)


def test_image_errors_are_message_errors_a_node_reports_as_bad_image():
    msg = good_message()
    msg.encoding = 'yuv422'
    with pytest.raises(MessageError) as error:
        image_to_array(msg)
    assert error.value.kind == 'bad_image' and isinstance(error.value, images.ImageFormatError)
    with pytest.raises(MessageError, match="'32FC1' is not a colour encoding"):
        as_rgb(random_pixels('32FC1'), '32FC1')


def test_nan_is_rejected_only_when_asked():
    pixels = random_pixels('32FC1')
    pixels[2, 3] = np.nan
    msg = array_to_image(pixels, '32FC1', STAMP, 'cam')
    assert np.isnan(image_to_array(msg)[2, 3])
    with pytest.raises(ImageFormatError, match='1 NaN'):
        image_to_array(msg, reject_nan=True)


@pytest.mark.parametrize('pixels, encoding, message', [
    (np.zeros((4, 4, 3), np.float32), 'rgb8', 'dtype float32 does not match encoding rgb8'),
    (np.zeros((4, 4), np.uint8), 'rgb8', r'shape \(4, 4\) does not fit encoding rgb8'),
    (np.zeros((4, 4, 4), np.uint8), 'rgb8', r'shape \(4, 4, 4\)'),
    (np.zeros((0, 4, 3), np.uint8), 'rgb8', 'zero size'),
    (np.zeros((4, 4), np.uint8), 'jpeg', "unsupported image encoding 'jpeg'"),
])
def test_array_not_matching_its_encoding_is_rejected(pixels, encoding, message):
    with pytest.raises(ImageFormatError, match=message):
        array_to_image(pixels, encoding, STAMP, 'cam')


def test_vga_conversion_is_not_per_element():
    pixels = random_pixels('rgb8', height=480, width=640)
    start = time.perf_counter()
    msg = array_to_image(pixels, 'rgb8', STAMP, 'cam')
    to_msg = time.perf_counter() - start
    start = time.perf_counter()
    back = image_to_array(msg)
    to_array = time.perf_counter() - start
    print(f'640x480 rgb8: array_to_image {to_msg * 1e3:.2f} ms, image_to_array {to_array * 1e3:.2f} ms')
    assert isinstance(msg.data, array.array) and len(msg.data) == 640 * 480 * 3
    np.testing.assert_array_equal(back, pixels)
    # No copy on the way back: the array reads the message's buffer.
    assert np.shares_memory(back, np.frombuffer(msg.data, dtype=np.uint8))


def test_camera_info_is_an_undistorted_pinhole():
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    info = camera_info(K, 640, 480, STAMP, 'cam')
    assert (info.width, info.height, info.distortion_model) == (640, 480, 'plumb_bob')
    assert list(info.d) == [0.0] * 5
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
    with pytest.raises(ValueError, match='3x3'):
        camera_info(np.eye(4), 640, 480, STAMP, 'cam')
    with pytest.raises(ValueError, match='0x480'):
        camera_info(K, 0, 480, STAMP, 'cam')


@pytest.mark.parametrize('stamp_ns', [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789])
def test_stamp_round_trip(stamp_ns):
    stamp = ns_to_stamp(stamp_ns)
    assert 0 <= stamp.nanosec < 10**9
    assert stamp_to_ns(stamp) == stamp_ns


def test_stamp_out_of_range_is_rejected():
    with pytest.raises(ValueError, match='-1 ns'):
        ns_to_stamp(-1)
    with pytest.raises(ValueError, match=str(2**31 * 10**9)):
        ns_to_stamp(2**31 * 10**9)


def test_pose_array_keeps_order_and_xyzw():
    msg = pose_array([[1, 2, 3], [4, 5, 6]], np.array([[0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5]]), STAMP, 'world')
    assert msg.header.frame_id == 'world'
    assert [(p.position.x, p.position.z, p.orientation.w, p.orientation.x) for p in msg.poses] == [
        (1, 3, 1, 0), (4, 6, 0.5, 0.5)]
    assert pose_array([], [], STAMP, 'world').poses == []
    with pytest.raises(ValueError, match='2 positions but 1 orientations'):
        pose_array([[1, 2, 3], [4, 5, 6]], [[0, 0, 0, 1]], STAMP, 'world')


def test_joint_state_fields_are_empty_or_one_per_name():
    msg = joint_state(['a', 'b'], np.array([0.1, 0.2]), [1.0, 2.0], [], STAMP)
    assert list(msg.name) == ['a', 'b']
    assert list(msg.position) == [0.1, 0.2] and list(msg.velocity) == [1.0, 2.0] and list(msg.effort) == []
    assert stamp_to_ns(deserialize_message(serialize_message(msg), type(msg)).header.stamp) == stamp_to_ns(STAMP)
    with pytest.raises(ValueError, match='2 names but 3 velocity values'):
        joint_state(['a', 'b'], [], [1, 2, 3], [], STAMP)
