"""ssl_robot.images, the one image pipeline: decoding every supported encoding, resizing, the models' input, errors
naming the bad value; and a frame recorded in a bag giving exactly the model input the same frame gives live."""

from __future__ import annotations

import array
import subprocess
import sys

import numpy as np
import pytest
import torch
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from test_data_fixtures import image_message, segmentation_labels

from ssl_robot import topics
from ssl_robot.data.bag_writer import BagWriter
from ssl_robot.data.bag_index import index_bag
from ssl_robot.data.reader import BagError, BagReader, ImageRef
from ssl_robot.images import (COLOUR_ENCODINGS, ImageFormatError, decode_pixels, model_input, model_pixels,
                              resize_labels, resize_rgb, rgb_to_tensor, to_labels, to_rgb)
from ssl_robot.ros.convert import array_to_image, ns_to_stamp
from ssl_robot.ros.decoders import rgb_frame

CAMERA = topics.camera_image('left')


def fields_of(message) -> tuple:
    return (message.encoding, int(message.height), int(message.width), int(message.step),
            bool(message.is_bigendian), message.data)


def scene(height: int = 29, width: int = 37, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def stored_as(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """rgb laid out as a camera publishing encoding stores it (mono8: its red channel, which to_rgb repeats)."""
    alpha = np.full(rgb.shape[:2], 200, np.uint8)
    return {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'rgba8': np.dstack([rgb, alpha]),
            'bgra8': np.dstack([rgb[..., ::-1], alpha]), 'mono8': rgb[..., 0]}[encoding]


def seen_as(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The RGB image a model is shown of rgb sent as encoding."""
    return np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono8' else rgb


def with_row_padding(message: Image, padding: int) -> Image:
    """message re-laid out with padding junk bytes after each row, as some camera drivers send."""
    rows = np.frombuffer(message.data, np.uint8).reshape(message.height, message.step)
    padded = Image(encoding=message.encoding, height=message.height, width=message.width,
                   step=message.step + padding, is_bigendian=message.is_bigendian, header=message.header)
    padded.data = array.array('B', np.hstack([rows, np.full((message.height, padding), 0xAB, np.uint8)]).tobytes())
    return padded


# --- the image module ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('encoding', COLOUR_ENCODINGS)
def test_every_colour_encoding_decodes_to_the_same_rgb(encoding):
    rgb = scene()
    message = image_message(stored_as(rgb, encoding), encoding, 0, padding=3)
    np.testing.assert_array_equal(to_rgb(decode_pixels(*fields_of(message)), encoding), seen_as(rgb, encoding))


def test_big_endian_16uc1_segmentation_decodes_to_native_labels_with_padding_skipped():
    labels = segmentation_labels(6, 8) * 300  # values above 255 make the byte order matter
    message = image_message(labels, '16UC1', 0, padding=2, big_endian=True)
    decoded = to_labels(decode_pixels(*fields_of(message)), '16UC1')
    np.testing.assert_array_equal(decoded, labels)
    assert decoded.dtype == np.uint16 and decoded.dtype.isnative


def test_decoded_pixels_view_the_buffer_read_only():
    data = np.arange(2 * 3 * 3, dtype=np.uint8)
    pixels = decode_pixels('rgb8', 2, 3, 9, False, data)
    assert np.shares_memory(pixels, data) and not pixels.flags.writeable


@pytest.mark.parametrize('layout, problem', [
    (('yuv422', 2, 3, 6, False, bytes(12)), "unsupported image encoding 'yuv422'"),
    (('rgba16', 2, 3, 24, False, bytes(48)), "unsupported image encoding 'rgba16'"),
    (('rgb8', 2, 3, 8, False, bytes(16)), r'step 8 is less than width \* channels \* bytes = 3 \* 3 \* 1 = 9'),
    (('rgb8', 2, 3, 9, False, bytes(17)), r'data has 17 bytes, expected step \* height = 9 \* 2 = 18'),
    (('rgb8', 0, 3, 9, False, bytes(0)), r'zero size \(3x0\)'),
    (('mono8', 2, 2, 2, False, b''), 'empty data'),
])
def test_malformed_pixels_are_refused_naming_the_bad_value(layout, problem):
    with pytest.raises(ImageFormatError, match=problem):
        decode_pixels(*layout)
    assert issubclass(ImageFormatError, ValueError)


def test_nan_is_refused_only_when_asked():
    values = np.array([[1.0, np.nan]], np.float32)
    assert np.isnan(decode_pixels('32FC1', 1, 2, 8, False, values.tobytes())[0, 1])
    with pytest.raises(ImageFormatError, match='1 NaN'):
        decode_pixels('32FC1', 1, 2, 8, False, values.tobytes(), reject_nan=True)


def test_a_segmentation_is_no_colour_image_and_a_colour_image_no_segmentation():
    with pytest.raises(ImageFormatError, match="encoding '16UC1' is not a colour encoding"):
        to_rgb(np.zeros((2, 2), np.uint16), '16UC1')
    with pytest.raises(ImageFormatError, match="segmentation encoding 'rgb8' is not one of 16UC1, mono16"):
        to_labels(np.zeros((2, 2, 3), np.uint8), 'rgb8')


def test_resizing_averages_pixel_areas_and_keeps_labels_whole():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :2] = 200
    np.testing.assert_array_equal(resize_rgb(rgb, 2)[..., 0], [[200, 0], [0, 0]])
    assert resize_rgb(rgb, 4) is rgb
    labels = np.array([[1, 1, 2, 2]] * 4, np.uint16)
    assert set(np.unique(resize_labels(labels, 3))) <= {1, 2}


@pytest.mark.parametrize('size', [0, -3, 2.5, True])
def test_a_bad_image_size_is_refused_naming_it(size):
    with pytest.raises(ValueError, match=f'image_size must be an int >= 1, got {size!r}'):
        resize_rgb(scene(), size)
    with pytest.raises(ValueError, match=f'got {size!r}'):
        resize_labels(np.zeros((4, 4), np.uint16), size)


def test_model_input_is_the_frame_resized_as_training_does_as_a_unit_range_chw_tensor():
    frame = scene()
    tensor = model_input(frame, 16)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0], torch.from_numpy(resize_rgb(frame, 16)).permute(2, 0, 1).float() / 255)
    assert torch.equal(rgb_to_tensor(np.stack([frame, frame])), rgb_to_tensor(frame)[None].expand(2, -1, -1, -1))


def test_model_pixels_resize_every_view_and_refuse_what_is_not_rgb():
    frames = [scene(24, 32), scene(24, 32, seed=1), scene(16, 16, seed=2)]
    stacked = model_pixels(frames, 16)
    assert stacked.shape == (3, 16, 16, 3) and stacked.dtype == np.uint8
    np.testing.assert_array_equal(stacked[0], resize_rgb(frames[0], 16))
    np.testing.assert_array_equal(stacked[2], frames[2])
    with pytest.raises(ValueError, match=r'view 1 must be an \(H, W, 3\) uint8 RGB image, got float32 \(16, 16, 3\)'):
        model_pixels([frames[2], frames[2].astype(np.float32)], 16)
    with pytest.raises(ValueError, match=r'view 0 .* got uint8 \(16, 16\)'):
        model_pixels([frames[2][..., 0]], 16)


def test_importing_the_image_module_does_not_import_torch():
    # The ROS conversion of every node imports it, and most nodes run no model.
    code = 'import sys, ssl_robot.images; assert "torch" not in sys.modules, "torch imported"'
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


# --- recorded and live frames -----------------------------------------------------------------------------------

def camera_message(rgb: np.ndarray, encoding: str, stamp_ns: int, padding: int) -> Image:
    message = array_to_image(stored_as(rgb, encoding), encoding, ns_to_stamp(stamp_ns), 'left')
    return with_row_padding(message, padding) if padding else message


MODEL_SIZE = 16


@pytest.mark.parametrize('read_size', [MODEL_SIZE, None])
def test_a_frame_from_a_bag_gives_the_model_input_the_same_frame_gives_live(tmp_path, read_size):
    """Each encoding's frame, with and without row padding, is recorded as the recorder node records it (the
    serialized message), read back as training reads it (index pass, BagReader at the model's size, the batch
    tensor) or as evaluation reads it (at the bag's resolution, resized later), and received as a live node
    receives it (deserialized, decoders.rgb_frame, the model input): the tensors are equal bit for bit."""
    cases = [(encoding, padding) for encoding in COLOUR_ENCODINGS for padding in (0, 5)]
    sent = {}
    with BagWriter(tmp_path / 'bag', flush_period_s=0) as writer:
        writer.add_topic(CAMERA, 'sensor_msgs/msg/Image')
        for number, (encoding, padding) in enumerate(cases):
            stamp_ns = (number + 1) * 10**9
            raw = serialize_message(camera_message(scene(seed=number), encoding, stamp_ns, padding))
            writer.write(CAMERA, stamp_ns, raw)
            sent[stamp_ns] = (number, encoding, raw)
    stamps = index_bag(tmp_path / 'bag', [CAMERA]).images[CAMERA]
    refs = [ImageRef(CAMERA, int(stamp), int(log)) for stamp, log in zip(stamps.stamp_ns, stamps.log_ns)]
    assert sorted(ref.stamp_ns for ref in refs) == sorted(sent)
    recorded = BagReader(tmp_path / 'bag').read_images(refs, read_size)
    for ref in refs:
        number, encoding, raw = sent[ref.stamp_ns]
        live = rgb_frame(deserialize_message(raw, Image))
        if read_size is None:
            from_bag = model_input(recorded[ref], MODEL_SIZE)
        else:
            from_bag = rgb_to_tensor(recorded[ref][None])  # as datasets.collate stacks rows into a batch
        from_live = model_input(live.rgb, MODEL_SIZE)
        assert from_bag.shape == (1, 3, MODEL_SIZE, MODEL_SIZE)
        assert torch.equal(from_bag, from_live), f'{encoding}: the bag and live model inputs differ'
        expected = seen_as(scene(seed=number), encoding)
        np.testing.assert_array_equal(recorded[ref], expected if read_size is None else resize_rgb(expected, read_size))


def test_an_unsupported_encoding_in_a_bag_is_a_bag_error_naming_it(tmp_path):
    message = array_to_image(np.zeros((2, 3), np.uint16), '16UC1', ns_to_stamp(10**9), 'left')
    with BagWriter(tmp_path / 'bag', flush_period_s=0) as writer:
        writer.add_topic(CAMERA, 'sensor_msgs/msg/Image')
        writer.write(CAMERA, 10**9, serialize_message(message))
    with pytest.raises(BagError, match=f"{CAMERA} image at stamp {10**9}: image encoding '16UC1' is not a colour"):
        BagReader(tmp_path / 'bag').read_images({ImageRef(CAMERA, 10**9, 10**9)}, 8)
