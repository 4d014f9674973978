"""ssl_robot.data.reader: the index pass, reading images (decoded by ssl_robot.images, test_images), and one-line
errors for bad bags."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from test_data_fixtures import TYPESTORE, BagSpec, decode_code, image_message, write_bag

from ssl_robot import topics
from ssl_robot.data.bag_writer import BagWriter
from ssl_robot.data.bag_index import index_bag
from ssl_robot.data.reader import BagError, BagReader, ImageRef, find_bags, header_stamp_ns, open_reader
from ssl_robot.images import rgb_to_tensor

LEFT = topics.camera_image('left')
RIGHT = topics.camera_image('right')


def test_header_stamp_is_read_from_the_serialized_bytes():
    stamp = 12 * 10**9 + 345_678_901
    raw = TYPESTORE.serialize_cdr(image_message(np.zeros((2, 2, 3), np.uint8), 'rgb8', stamp), 'sensor_msgs/msg/Image')
    assert header_stamp_ns(raw) == stamp


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_index_pass_keeps_every_image_stamp_and_event(tmp_path, storage):
    spec = BagSpec(camera_offsets_ns=(0, 3_000_000), latency_ns=5_000_000, ground_truth=True)
    bag = write_bag(tmp_path / 'bag', spec, storage)
    index = index_bag(bag, [LEFT, RIGHT], ground_truth=True)
    ticks = spec.image_ticks
    np.testing.assert_array_equal(index.images[RIGHT].stamp_ns, [spec.stamp(t, 1) for t in ticks])
    np.testing.assert_array_equal(index.images[RIGHT].log_ns, [spec.stamp(t, 1) + spec.latency_ns for t in ticks])
    assert [e['episode'] for e in index.episodes] == [0, 1, 2]
    assert len(index.ground_truth.stamp_ns) == sum(spec.episode_ticks)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_reader_returns_exactly_the_referenced_images(tmp_path, storage):
    spec = BagSpec(tick_ns=100_000_000)  # the refs are seconds apart: read with one query each
    bag = write_bag(tmp_path / 'bag', spec, storage)
    refs = {ImageRef(RIGHT, spec.stamp(t, 1), spec.stamp(t, 1)) for t in (4, 40, 80)}
    images = BagReader(bag).read_images(refs, None)
    assert {ref.stamp_ns: decode_code(rgb_to_tensor(images[ref])) for ref in refs} == {
        spec.stamp(t): (20, t) for t in (4, 40, 80)}
    assert images[next(iter(refs))].shape == (spec.height, spec.width, 3)


def test_a_directory_of_bags_is_expanded_in_name_order(tmp_path):
    for name in ('b', 'a'):
        write_bag(tmp_path / 'bags' / name, BagSpec(episode_ticks=(4,)))
    assert find_bags([tmp_path / 'bags']) == [tmp_path / 'bags' / 'a', tmp_path / 'bags' / 'b']


# --- bad bags: one line naming the file and the problem ---------------------------------------------------

@pytest.fixture(scope='module')
def good_bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('good')
    return {storage: write_bag(root / storage, BagSpec(), storage) for storage in ('mcap', 'sqlite3')}


def broken_copy(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def storage_files(bag: Path) -> list[Path]:
    return sorted(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))


def assert_one_line_naming(err: pytest.ExceptionInfo, bag: Path, problem: str) -> None:
    text = str(err.value)
    assert '\n' not in text and str(bag) in text and problem in text, text


def test_truncated_mcap_is_a_bag_error(good_bags, tmp_path):
    bag = broken_copy(good_bags['mcap'], tmp_path / 'truncated')
    split = storage_files(bag)[0]
    split.write_bytes(split.read_bytes()[:len(split.read_bytes()) // 2])
    with pytest.raises(BagError) as err:
        index_bag(bag, [LEFT])
    assert_one_line_naming(err, bag, 'corrupt or truncated')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_garbage_storage_file_is_a_bag_error(good_bags, tmp_path, storage):
    bag = broken_copy(good_bags[storage], tmp_path / 'garbage')
    split = storage_files(bag)[0]
    split.write_bytes(os.urandom(split.stat().st_size))
    with pytest.raises(BagError) as err:
        index_bag(bag, [LEFT])
    assert_one_line_naming(err, bag, 'corrupt or truncated')


def test_missing_metadata_is_a_bag_error(good_bags, tmp_path):
    bag = broken_copy(good_bags['mcap'], tmp_path / 'no_metadata')
    (bag / 'metadata.yaml').unlink()
    with pytest.raises(BagError) as err:
        open_reader(bag)
    assert_one_line_naming(err, bag, 'metadata.yaml is missing')


def test_missing_storage_file_is_a_bag_error(good_bags, tmp_path):
    bag = broken_copy(good_bags['mcap'], tmp_path / 'lost_split')
    storage_files(bag)[-1].unlink()
    with pytest.raises(BagError) as err:
        open_reader(bag)
    assert_one_line_naming(err, bag, 'missing')


def test_garbled_image_record_is_a_bag_error_naming_the_topic(tmp_path):
    stamp_s = 5
    # A header stamp, then a frame_id length far beyond the record's end.
    garbled = b'\x00\x01\x00\x00' + struct.pack('<iII', stamp_s, 0, 0xFFFFFFF0) + b'abc'
    with BagWriter(tmp_path / 'bag', flush_period_s=0) as writer:
        writer.add_topic(LEFT, 'sensor_msgs/msg/Image')
        writer.write(LEFT, stamp_s * 10**9, garbled)
    with pytest.raises(BagError) as err:
        BagReader(tmp_path / 'bag').read_images({ImageRef(LEFT, stamp_s * 10**9, stamp_s * 10**9)}, 8)
    assert_one_line_naming(err, tmp_path / 'bag', f'message on {LEFT} is corrupt')
