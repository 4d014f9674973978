"""Reading rosbag2 bags (MCAP or sqlite3) with rosbags, without ROS; their images are decoded by ssl_robot.images,
as live frames are.

Two kinds of access, so that a bag larger than memory trains:

- data.bag_index.index_bag(): one streaming pass that keeps stamps and events only;
- BagReader.read_images(): the decoded images of a set of (topic, stamp) references, read with one
  time-bounded query per run of nearby references (the MCAP chunk index and the sqlite3 timestamp
  index skip everything else).

Every problem with a bag is a BagError: one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot.images import ImageFormatError, decode_pixels, resize_labels, resize_rgb, to_labels, to_rgb

IMAGE_TYPE = 'sensor_msgs/msg/Image'
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGE_SUFFIXES = ('.mcap', '.db3')


class BagError(ValueError):
    """A bag that cannot be used: unreadable, corrupt, lacking a topic, or without usable samples."""

    def __init__(self, path: str | Path | Sequence[Path], problem: str) -> None:
        where = ', '.join(str(p) for p in path) if isinstance(path, (list, tuple)) else str(path)
        super().__init__(' '.join(f'{where}: {problem}'.split()))


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """The header stamp of a serialized message that starts with a std_msgs/Header, from its CDR bytes.

    The stamp is the first field after the 4-byte encapsulation header, so the rest of the message (the
    pixels, for an image) need not be deserialized.
    """
    if len(raw) < 12:
        raise ValueError(f'message of {len(raw)} bytes is too short to hold a header stamp')
    byte_order = '<' if raw[1] & 1 else '>'
    seconds, nanoseconds = struct.unpack_from(f'{byte_order}iI', raw, 4)
    return seconds * 1_000_000_000 + nanoseconds


# --- opening bags -----------------------------------------------------------------------------------------

def problem_text(err: BaseException) -> str:
    """An exception's message, or its type's name when it has none."""
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
        raise BagError(path, f'cannot open the bag, it is corrupt or truncated: {problem_text(err)}') from err
    return reader


def bag_topics(path: Path) -> dict[str, str]:
    """topic -> message type of a bag, from its metadata (no messages are read)."""
    reader = open_reader(path)
    try:
        return {connection.topic: connection.msgtype for connection in reader.connections}
    finally:
        reader.close()


def guarded(path: Path, messages: Iterator[tuple[Any, int, bytes]]) -> Iterator[tuple[Any, int, bytes]]:
    """messages, with a storage error in the middle of the bag (bad chunk, bad page) as a BagError."""
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except Exception as err:  # see open_reader
            raise BagError(path, f'cannot read the bag, it is corrupt or truncated: {problem_text(err)}') from err
        yield item


def deserialize(path: Path, topic: str, msgtype: str, raw: bytes) -> Any:
    """A CDR record of the bag deserialized; a BagError naming the topic if it is corrupt."""
    try:
        return TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception as err:  # garbled CDR fails in many ways
        raise BagError(path, f'a {msgtype} message on {topic} is corrupt: {problem_text(err)}') from err


def image_stamp(path: Path, topic: str, log_ns: int, raw: bytes) -> int:
    """The header stamp of a serialized image of the bag; a BagError naming the topic if the record is too short."""
    try:
        return header_stamp_ns(raw)
    except ValueError as err:
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
        for connection, log_ns, raw in guarded(self.path, messages):
            ref = wanted.get((connection.topic, image_stamp(self.path, connection.topic, log_ns, raw)))
            if ref is None or ref in images:
                continue
            message = deserialize(self.path, connection.topic, connection.msgtype, raw)
            try:
                pixels = decode_pixels(message.encoding, int(message.height), int(message.width), int(message.step),
                                       bool(message.is_bigendian), message.data)
                if ref.labels:
                    pixels = to_labels(pixels, message.encoding)
                    pixels = resize_labels(pixels, image_size) if image_size is not None else pixels
                else:
                    pixels = to_rgb(pixels, message.encoding)
                    pixels = resize_rgb(pixels, image_size) if image_size is not None else pixels
            except ImageFormatError as err:
                raise BagError(self.path, f'{connection.topic} image at stamp {ref.stamp_ns}: {err}') from err
            # A copy of its own: a view would keep the whole message (and its row padding) alive in the cache.
            images[ref] = np.array(pixels) if pixels.base is not None else pixels
