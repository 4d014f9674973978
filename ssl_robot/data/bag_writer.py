"""rosbag2 bags written through rosbags from serialized CDR bytes, readable after the writer is killed.

Messages are stored exactly as received (no decode, no re-encode), and every topic carries its message
definition and RIHS01 type hash, so the bag opens with rosbags' Reader/AnyReader and with `ros2 bag`.

Crash safety. rosbags' Reader needs a metadata.yaml naming every storage file, and each storage file
must be complete by its own format's rules. The bag is therefore made durable at every flush (every
`flush_every_messages` messages or `flush_period_s` seconds, whichever comes first), and a kill loses
at most what came after the last flush:

- metadata.yaml is written when the bag is created and rewritten atomically (temp file + rename) at
  every flush, listing only storage files and counts that are complete on disk;
- mcap: rosbags' MCAP reader rejects a file without its footer (end magic), which a killed writer never
  writes, so each flush closes the current MCAP file and starts the next one, as rosbag2 splits do
  (`<bag>_0.mcap`, `<bag>_1.mcap`, ...). The open file is written in a hidden `.<bag>_<n>.partial/`
  directory and moved into the bag only once closed: a kill leaves that directory behind, unlisted;
- sqlite3: rosbags' reader opens the database as immutable and so ignores any journal. The database runs
  in WAL mode (rosbag2's "resilient" preset), so uncommitted pages never touch the main file, and each
  flush commits and checkpoints the WAL into it. On close the journal mode goes back to the default.

Full disk. A write that fails half-way leaves a storage file that cannot be finished, and finishing one
(an MCAP footer, a WAL checkpoint, metadata.yaml) needs space too. So the writer keeps a reserve: before
a write would start with less than `min_free_bytes` free on the bag's file system, it flushes what it has and
raises DiskFull; the bag then holds every message written before, and stays closable.
"""

from __future__ import annotations

import errno
import shutil
import time
from contextlib import contextmanager
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import yaml
from rosbags.interfaces import Qos
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from ssl_robot.atomic import write_atomic
from ssl_robot.data.bag_storage import BAG_FORMAT_VERSION, BagTopic, McapSplits, Sqlite3Files, StorageFile

STORAGES = ('mcap', 'sqlite3')
DEFAULT_MIN_FREE_BYTES = 32 * 2**20
"""Room kept for what finishing the bag writes (MCAP footer and index, WAL checkpoint, metadata.yaml)."""


class DiskFull(OSError):
    """A write would eat into the free-space reserve; the bag holds everything written before it."""


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of path."""
    return shutil.disk_usage(path).free


ROS_DISTRO = 'kilted'
"""The distribution whose message definitions the default typestore holds."""


class BagWriter:
    """Writes a rosbag2 bag (format version 9) of serialized messages; use as a context manager.

    add_topic() registers a topic before its first write(); topics can be added at any time. The type's
    definition and hash come from `typestore` (default: rosbags' ROS 2 Kilted store) unless given.
    Flushing happens inside write() when due; a caller with quiet periods calls flush_if_due() from a
    timer too. flush_every_messages=0 and flush_period_s=0 disable the respective trigger; with both
    disabled the bag is complete only after close(). A write that finds less than min_free_bytes
    free flushes and raises DiskFull (0 disables the check).
    """

    def __init__(self, path: str | Path, storage: str = 'mcap', *, flush_every_messages: int = 1000,
                 flush_period_s: float = 5.0, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 typestore: Typestore | None = None, monotonic: Callable[[], float] = time.monotonic,
                 free_space: Callable[[Path], int] = free_bytes) -> None:
        if storage not in STORAGES:
            raise ValueError(f'storage {storage!r} is not one of {STORAGES}')
        if flush_every_messages < 0:
            raise ValueError(f'flush_every_messages {flush_every_messages} must be >= 0 (0 disables it)')
        if flush_period_s < 0:
            raise ValueError(f'flush_period_s {flush_period_s} must be >= 0 (0 disables it)')
        if min_free_bytes < 0:
            raise ValueError(f'min_free_bytes {min_free_bytes} must be >= 0 (0 disables the reserve)')
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'bag directory {self.path} already exists; choose a new output path')
        self.storage = storage
        self.flush_every_messages = flush_every_messages
        self.flush_period_s = flush_period_s
        self.min_free_bytes = min_free_bytes
        self._free_space = free_space
        self._typestore = typestore if typestore is not None else get_typestore(Stores.ROS2_KILTED)
        self._monotonic = monotonic
        self._topics: dict[str, BagTopic] = {}
        self._durable_counts: dict[str, int] = {}
        self._pending_counts: dict[str, int] = {}
        self._last_flush_s = monotonic()
        self._closed = False
        self._interrupted = False
        self._files = McapSplits(self.path) if storage == 'mcap' else Sqlite3Files(self.path)
        self._write_metadata()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        # Whatever was written before an error is valid data: keep it.
        self.close()

    @property
    def topics(self) -> dict[str, BagTopic]:
        return dict(self._topics)

    @property
    def message_count(self) -> int:
        """Messages written so far, flushed or not."""
        return sum(self._durable_counts.values()) + sum(self._pending_counts.values())

    def add_topic(self, topic: str, msgtype: str, qos_profiles: Sequence[Qos] = (), *, msgdef: str | None = None,
                  type_hash: str | None = None) -> BagTopic:
        """Register a topic of type msgtype ('sensor_msgs/msg/Image') with the QoS its publishers offered."""
        self._check_open()
        if topic in self._topics:
            raise ValueError(f'topic {topic} is already in the bag (as {self._topics[topic].msgtype})')
        if msgdef is None or type_hash is None:
            if msgtype not in self._typestore.fielddefs:
                raise ValueError(f'message type {msgtype!r} of topic {topic} is unknown to the typestore; '
                                 f'pass msgdef and type_hash')
            msgdef = self._typestore.generate_msgdef(msgtype, ros_version=2)[0]
            type_hash = self._typestore.hash_rihs01(msgtype)
        bag_topic = BagTopic(topic, msgtype, msgdef, type_hash, tuple(qos_profiles))
        self._files.add_topic(bag_topic)
        self._topics[topic] = bag_topic
        self._durable_counts[topic] = 0
        self._pending_counts[topic] = 0
        return bag_topic

    def write(self, topic: str, timestamp_ns: int, cdr_bytes: bytes | memoryview) -> None:
        """Store one serialized message as is, stamped timestamp_ns (rosbag2 uses the receive time)."""
        self._check_open()
        if topic not in self._topics:
            raise ValueError(f'topic {topic} was not added to the bag; call add_topic() first')
        self._keep_reserve()
        with self._marking_interruptions():
            self._files.write(topic, timestamp_ns, cdr_bytes)
        self._pending_counts[topic] += 1
        self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Flush when flush_every_messages messages or flush_period_s seconds have passed; True if it did."""
        pending = sum(self._pending_counts.values())
        due = (self.flush_every_messages and pending >= self.flush_every_messages) or (
            self.flush_period_s and pending and self._monotonic() - self._last_flush_s >= self.flush_period_s)
        if due:
            self.flush()
        return bool(due)

    def flush(self) -> None:
        """Make everything written so far durable and readable, even if this process dies next."""
        self._check_open()
        with self._marking_interruptions():
            self._files.flush()
        self._commit_counts()
        self._write_metadata()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._interrupted:
            self._files.close_discarding_unflushed()
            if sum(f.message_count for f in self._files.complete) == self.message_count:
                self._commit_counts()  # interrupted after the storage had made every message durable
            else:
                self._pending_counts = dict.fromkeys(self._pending_counts, 0)
        else:
            self._files.close()
            self._commit_counts()
        self._write_metadata()

    def _keep_reserve(self) -> None:
        if not self.min_free_bytes:
            return
        free = self._free_space(self.path)
        if free < self.min_free_bytes:
            self.flush()
            raise DiskFull(errno.ENOSPC, f'{free} bytes free on the disk of {self.path}, under the '
                           f'{self.min_free_bytes}-byte reserve that finishing the bag needs; '
                           f'{self.message_count} messages are in the bag', str(self.path))

    @contextmanager
    def _marking_interruptions(self) -> Iterator[None]:
        # An exception inside the storage writer (Ctrl-C included) can leave a half-written record;
        # close() then keeps only what the last flush made durable.
        try:
            yield
        except BaseException:
            self._interrupted = True
            raise

    def _commit_counts(self) -> None:
        for topic, count in self._pending_counts.items():
            self._durable_counts[topic] += count
            self._pending_counts[topic] = 0
        self._last_flush_s = self._monotonic()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f'bag {self.path} is closed')
        if self._interrupted:
            raise ValueError(f'bag {self.path} was interrupted in the middle of a write; close() it')

    def _write_metadata(self) -> None:
        files = self._files.complete
        start = min((f.start_ns for f in files if f.message_count), default=0)
        end = max((f.end_ns for f in files if f.message_count), default=start)

        def file_entry(storage_file: StorageFile) -> dict:
            file_start = storage_file.start_ns if storage_file.message_count else start
            return {'path': storage_file.name,
                    'starting_time': {'nanoseconds_since_epoch': file_start},
                    'duration': {'nanoseconds': max(0, storage_file.end_ns - file_start)},
                    'message_count': storage_file.message_count}

        information = {
            'version': BAG_FORMAT_VERSION,
            'storage_identifier': self.storage,
            'relative_file_paths': [f.name for f in files],
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': sum(f.message_count for f in files),
            'topics_with_message_count': [
                {'topic_metadata': {'name': topic.name,
                                    'type': topic.msgtype,
                                    'serialization_format': 'cdr',
                                    'offered_qos_profiles': dump_qos_v9(list(topic.qos_profiles)),
                                    'type_description_hash': topic.type_hash},
                 'message_count': self._durable_counts[topic.name]}
                for topic in self._files.durable_topics],
            'compression_format': '',
            'compression_mode': '',
            'files': [file_entry(f) for f in files],
            'custom_data': None,
            'ros_distro': ROS_DISTRO,
        }
        write_atomic(self.path / 'metadata.yaml',
                          yaml.safe_dump({'rosbag2_bagfile_information': information}, sort_keys=False))
