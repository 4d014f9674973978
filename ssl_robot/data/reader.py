"""Reading rosbag2 bags (MCAP or sqlite3) with rosbags, and decoding their images, without ROS.

Two kinds of access, so that a bag larger than memory trains:

- index_bag(): one streaming pass that keeps only what is small: the header stamp of every image (read
  from the first bytes of its CDR record, the pixels are never decoded), the episode and grasp events,
  and, when asked, three flags per ground-truth tick;
- BagReader.read_images(): the decoded images of a set of (topic, stamp) references, read with one
  time-bounded query per run of nearby references (the MCAP chunk index and the sqlite3 timestamp
  index skip everything else).

Every problem with a bag is a BagError: one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot import topics

IMAGE_TYPE = 'sensor_msgs/msg/Image'
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE_SUFFIXES = ('.mcap', '.db3')


class BagError(ValueError):
    """A bag that cannot be used: unreadable, corrupt, lacking a topic, or without usable samples."""

    def __init__(self, path: str | Path | Sequence[Path], problem: str) -> None:
        where = ', '.join(str(p) for p in path) if isinstance(path, (list, tuple)) else str(path)
        super().__init__(' '.join(f'{where}: {problem}'.split()))


class ImageDecodeError(ValueError):
    """An Image message whose layout does not match its encoding, or whose encoding is not supported."""


# --- images -----------------------------------------------------------------------------------------------

_PIXEL_LAYOUTS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'mono8': (np.dtype(np.uint8), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    'mono16': (np.dtype(np.uint16), 1),
}
COLOUR_ENCODINGS = ('rgb8', 'bgr8', 'mono8')
LABEL_ENCODINGS = ('16UC1', 'mono16')


def image_pixels(message: Any) -> np.ndarray:
    """The (H, W, C) pixels of a deserialized Image, row padding (step) skipped, in native byte order."""
    layout = _PIXEL_LAYOUTS.get(message.encoding)
    if layout is None:
        raise ImageDecodeError(f'unsupported image encoding {message.encoding!r}; '
                               f'supported: {", ".join(_PIXEL_LAYOUTS)}')
    dtype, channels = layout
    height, width, step = int(message.height), int(message.width), int(message.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.frombuffer(message.data, dtype=np.uint8)
    if height == 0 or width == 0:
        raise ImageDecodeError(f'{message.encoding} image has zero size ({width}x{height})')
    if step < row_bytes:
        raise ImageDecodeError(f'{message.encoding} image step {step} is less than width * channels * bytes = '
                               f'{row_bytes}')
    if data.size < step * height:
        raise ImageDecodeError(f'{message.encoding} image has {data.size} data bytes, expected step * height = '
                               f'{step * height}')
    rows = data[:step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder('>' if message.is_bigendian else '<'))
    return pixels.reshape(height, width, channels).astype(dtype, copy=False)


def image_to_rgb(message: Any) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from an rgb8, bgr8 or mono8 Image."""
    if message.encoding not in COLOUR_ENCODINGS:
        raise ImageDecodeError(f'image encoding {message.encoding!r} is not a colour encoding '
                               f'({", ".join(COLOUR_ENCODINGS)})')
    pixels = image_pixels(message)
    if message.encoding == 'bgr8':
        return np.ascontiguousarray(pixels[..., ::-1])
    if message.encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    return pixels


def image_to_labels(message: Any) -> np.ndarray:
    """The (H, W) uint16 labels of a 16UC1 segmentation Image (object index + 1, 0 = background)."""
    if message.encoding not in LABEL_ENCODINGS:
        raise ImageDecodeError(f'segmentation encoding {message.encoding!r} is not one of {LABEL_ENCODINGS}')
    return image_pixels(message)[..., 0]


def resize_rgb(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """rgb resized to image_size x image_size by pixel-area averaging (the aspect ratio is not kept)."""
    if rgb.shape[:2] == (image_size, image_size):
        return rgb
    return cv2.resize(rgb, (image_size, image_size), interpolation=cv2.INTER_AREA)


def resize_labels(labels: np.ndarray, image_size: int) -> np.ndarray:
    """Labels resized by nearest neighbour, since averaging object indices would invent objects."""
    if labels.shape == (image_size, image_size):
        return labels
    return cv2.resize(labels, (image_size, image_size), interpolation=cv2.INTER_NEAREST)


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1], the layout the models take."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(255.0).contiguous()


def decode_image(message: Any, image_size: int) -> torch.Tensor:
    """A deserialized rgb8/bgr8/mono8 Image as a (3, image_size, image_size) float32 tensor in [0, 1]."""
    return rgb_to_tensor(resize_rgb(image_to_rgb(message), image_size))


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """The header stamp of a serialized message that starts with a std_msgs/Header, from its CDR bytes.

    The stamp is the first field after the 4-byte encapsulation header, so the rest of the message (the
    pixels, for an image) need not be deserialized.
    """
    if len(raw) < 12:
        raise ImageDecodeError(f'message of {len(raw)} bytes is too short to hold a header stamp')
    byte_order = '<' if raw[1] & 1 else '>'
    seconds, nanoseconds = struct.unpack_from(f'{byte_order}iI', raw, 4)
    return seconds * 1_000_000_000 + nanoseconds


# --- opening bags -----------------------------------------------------------------------------------------

def _problem(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _is_bag(path: Path) -> bool:
    return (path / 'metadata.yaml').is_file() or path.suffix in STORAGE_SUFFIXES


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """The bags named by paths: each a bag directory, a lone .mcap/.db3 file, or a directory of bags
    (its sub-directories that hold a metadata.yaml, sorted by name)."""
    bags: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(path, 'does not exist')
        children = sorted(child for child in path.iterdir() if child.is_dir() and _is_bag(child)) \
            if path.is_dir() and not _is_bag(path) else []
        bags.extend(children or [path])
    if not bags:
        raise BagError('bags', 'no bag paths given')
    return bags


def open_reader(path: Path) -> Reader:
    """An open rosbags Reader; anything that keeps the bag from opening is a BagError naming it."""
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError(path, 'is not a rosbag2 bag: metadata.yaml is missing (a recording cut before it was '
                             'written, or the wrong directory)')
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags reports corrupt storage with many exception types
        raise BagError(path, f'cannot open the bag, it is corrupt or truncated: {_problem(err)}') from err
    return reader


def bag_topics(path: Path) -> dict[str, str]:
    """topic -> message type of a bag, from its metadata (no messages are read)."""
    reader = open_reader(path)
    try:
        return {connection.topic: connection.msgtype for connection in reader.connections}
    finally:
        reader.close()


def _guarded(path: Path, messages: Iterator[tuple[Any, int, bytes]]) -> Iterator[tuple[Any, int, bytes]]:
    """messages, with a storage error in the middle of the bag (bad chunk, bad page) as a BagError."""
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except Exception as err:  # see open_reader
            raise BagError(path, f'cannot read the bag, it is corrupt or truncated: {_problem(err)}') from err
        yield item


def _deserialize(path: Path, topic: str, msgtype: str, raw: bytes) -> Any:
    try:
        return TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception as err:  # garbled CDR fails in many ways
        raise BagError(path, f'a {msgtype} message on {topic} is corrupt: {_problem(err)}') from err


def _image_stamp(path: Path, topic: str, log_ns: int, raw: bytes) -> int:
    try:
        return header_stamp_ns(raw)
    except ImageDecodeError as err:
        raise BagError(path, f'an image on {topic} at bag time {log_ns} is corrupt: {err}') from err


def require_topics(path: Path, available: dict[str, str], needed: Iterable[str], purpose: str,
                   msgtype: str | None = None) -> None:
    """BagError listing every needed topic the bag lacks, or that has another type than msgtype."""
    needed = list(needed)
    missing = [topic for topic in needed if topic not in available]
    if missing:
        raise BagError(path, f'lacks topic{"s" if len(missing) > 1 else ""} {", ".join(missing)} needed '
                             f'for {purpose}')
    if msgtype is not None:
        wrong = [f'{topic} is {available[topic]}' for topic in needed if available[topic] != msgtype]
        if wrong:
            raise BagError(path, f'{"; ".join(wrong)}, not {msgtype}')


# --- the index pass ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StampIndex:
    """The images of one topic in bag order: bag (receive) time, used to query, and header stamp."""

    log_ns: np.ndarray
    stamp_ns: np.ndarray

    def __post_init__(self) -> None:
        by_stamp = np.argsort(self.stamp_ns, kind='stable')
        object.__setattr__(self, '_by_stamp', by_stamp)
        object.__setattr__(self, '_sorted_stamps', self.stamp_ns[by_stamp])

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> int | None:
        """Position of the image whose header stamp is nearest to stamp_ns, if within tolerance_ns."""
        by_stamp = self._by_stamp
        right = int(np.searchsorted(self._sorted_stamps, stamp_ns))
        candidates = [int(by_stamp[i]) for i in (right - 1, right) if 0 <= i < len(by_stamp)]
        best = min(candidates, key=lambda i: abs(int(self.stamp_ns[i]) - stamp_ns), default=None)
        return best if best is not None and abs(int(self.stamp_ns[best]) - stamp_ns) <= tolerance_ns else None


@dataclass(frozen=True)
class GroundTruthFlags:
    """Per ground-truth tick, the attributes evaluation probes for, in stamp order."""

    stamp_ns: np.ndarray
    gripper_closed: np.ndarray
    object_lifted: np.ndarray
    gripper_contact: np.ndarray

    def at(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(N, 3) bool: (gripper closed, any object lifted, any object touching the gripper) of the tick
        nearest in time to each stamp."""
        right = np.searchsorted(self.stamp_ns, stamps_ns).clip(0, len(self.stamp_ns) - 1)
        left = (right - 1).clip(0)
        nearer_left = np.abs(stamps_ns - self.stamp_ns[left]) <= np.abs(self.stamp_ns[right] - stamps_ns)
        nearest = np.where(nearer_left, left, right)
        return np.stack([self.gripper_closed[nearest], self.object_lifted[nearest], self.gripper_contact[nearest]],
                        axis=1)


@dataclass
class BagIndex:
    path: Path
    topics: dict[str, str]
    images: dict[str, StampIndex]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """/sim/episode events by stamp, duplicates (a latched message received twice) removed."""
    grasps: list[dict[str, Any]] = field(default_factory=list)
    """/sim/grasp_events events by s_pre stamp."""
    ground_truth: GroundTruthFlags | None = None


def _ground_truth_row(event: dict[str, Any]) -> tuple[int, bool, bool, bool]:
    objects = event['objects']
    return (topics.stamp_from_dict(event['stamp']), bool(event['gripper']['closed']),
            any(o['lifted'] for o in objects), any(o['touching_gripper'] for o in objects))


EVENT_KINDS = {topics.EPISODES: 'episode', topics.GRASP_EVENTS: 'grasp', topics.GROUND_TRUTH: 'ground_truth'}


def index_bag(path: Path, image_topics: Collection[str], *, ground_truth: bool = False) -> BagIndex:
    """One streaming pass over the image topics, the episode and grasp events and (if asked) the ground
    truth, of which only three flags per tick are kept; the topics must exist (see require_topics)."""
    reader = open_reader(path)
    available = {connection.topic: connection.msgtype for connection in reader.connections}
    wanted = {*image_topics, topics.EPISODES, topics.GRASP_EVENTS, *([topics.GROUND_TRUTH] if ground_truth else [])}
    stamps = {topic: (array('q'), array('q')) for topic in image_topics}
    events: dict[str, list[dict[str, Any]]] = {topics.EPISODES: [], topics.GRASP_EVENTS: []}
    ground_truth_rows: list[tuple[int, bool, bool, bool]] = []
    try:
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, log_ns, raw in _guarded(path, reader.messages(connections)):
            topic = connection.topic
            if topic in stamps:
                stamps[topic][0].append(log_ns)
                stamps[topic][1].append(_image_stamp(path, topic, log_ns, raw))
                continue
            text = _deserialize(path, topic, connection.msgtype, raw).data
            try:
                event = topics.decode_event(text, EVENT_KINDS[topic])
                if topic == topics.GROUND_TRUTH:
                    ground_truth_rows.append(_ground_truth_row(event))
                else:
                    events[topic].append(event)
            except (ValueError, KeyError, TypeError) as err:
                raise BagError(path, f'a {topic} message does not follow ssl_robot.topics: {_problem(err)}') from err
    finally:
        reader.close()
    index = BagIndex(path, available, {topic: StampIndex(np.frombuffer(logs, dtype=np.int64),
                                                         np.frombuffer(header_stamps, dtype=np.int64))
                                       for topic, (logs, header_stamps) in stamps.items()})
    try:
        episodes = {topics.stamp_from_dict(e['stamp']): e for e in events[topics.EPISODES]}
        index.episodes = [episodes[stamp] for stamp in sorted(episodes)]
        index.grasps = sorted(events[topics.GRASP_EVENTS], key=lambda e: topics.stamp_from_dict(e['s_pre']))
    except (KeyError, TypeError) as err:
        raise BagError(path, f'an event lacks the field {err} (events must follow ssl_robot.topics)') from err
    if ground_truth:
        table = np.array(sorted(ground_truth_rows), dtype=np.int64).reshape(-1, 4)
        index.ground_truth = GroundTruthFlags(table[:, 0].copy(), *(table[:, i].astype(bool) for i in (1, 2, 3)))
    return index


# --- reading images ---------------------------------------------------------------------------------------

READ_GAP_NS = 1_000_000_000
"""Refs further apart in bag time than this are read with separate queries: sparse refs (grasp keyframes)
would otherwise read every image in between."""


def _runs(refs: list[ImageRef]) -> Iterator[list[ImageRef]]:
    """refs (sorted by bag time) cut wherever consecutive bag times are more than READ_GAP_NS apart."""
    run: list[ImageRef] = []
    for ref in refs:
        if run and ref.log_ns - run[-1].log_ns > READ_GAP_NS:
            yield run
            run = []
        run.append(ref)
    if run:
        yield run


class ImageRef(NamedTuple):
    """One image of a bag: its topic and header stamp, its bag time (to find it), and whether it is a
    segmentation (labels) rather than a colour image."""

    topic: str
    stamp_ns: int
    log_ns: int
    labels: bool = False


class BagReader:
    """Reads decoded images from one bag; opens the bag on first use, and again in a new process, since a
    worker process must not share the file offsets of its parent's reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Reader | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {'path': self.path, '_reader': None, '_pid': None}

    def _open(self) -> Reader:
        if self._reader is None or self._pid != os.getpid():
            self._reader = open_reader(self.path)
            self._pid = os.getpid()
        return self._reader

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def read_images(self, refs: Collection[ImageRef], image_size: int | None) -> dict[ImageRef, np.ndarray]:
        """Each ref's image, resized to image_size unless it is None: (H, W, 3) uint8 RGB, or (H, W) uint16
        labels. Refs are read in runs, one query per run of bag times without a gap of READ_GAP_NS."""
        images: dict[ImageRef, np.ndarray] = {}
        for run in _runs(sorted(refs, key=lambda ref: ref.log_ns)):
            self._read_run(run, image_size, images)
        missing = [ref for ref in refs if ref not in images]
        if missing:
            raise BagError(self.path, f'{len(missing)} indexed image(s) are gone, e.g. {missing[0].topic} at stamp '
                                      f'{missing[0].stamp_ns}: the bag changed after it was indexed')
        return images

    def _read_run(self, refs: list[ImageRef], image_size: int | None, images: dict[ImageRef, np.ndarray]) -> None:
        reader = self._open()
        wanted = {(ref.topic, ref.stamp_ns): ref for ref in refs}
        connections = [c for c in reader.connections if c.topic in {ref.topic for ref in refs}]
        messages = reader.messages(connections, refs[0].log_ns, refs[-1].log_ns + 1)
        for connection, log_ns, raw in _guarded(self.path, messages):
            ref = wanted.get((connection.topic, _image_stamp(self.path, connection.topic, log_ns, raw)))
            if ref is None or ref in images:
                continue
            message = _deserialize(self.path, connection.topic, connection.msgtype, raw)
            try:
                pixels = image_to_labels(message) if ref.labels else image_to_rgb(message)
                if image_size is not None:
                    pixels = resize_labels(pixels, image_size) if ref.labels else resize_rgb(pixels, image_size)
            except ImageDecodeError as err:
                raise BagError(self.path, f'{connection.topic} image at stamp {ref.stamp_ns}: {err}') from err
            images[ref] = pixels
