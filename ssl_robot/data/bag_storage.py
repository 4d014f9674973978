"""The storage files of a bag written by BagWriter: one rosbags Writer at a time, and the files complete on disk.

mcap: each flush closes the current MCAP file (rosbags' reader rejects one without its footer) and starts the
next, as rosbag2 splits do (`<bag>_0.mcap`, `<bag>_1.mcap`, ...); the open file lives in a hidden
`.<bag>_<n>.partial/` directory and is moved into the bag only once closed. sqlite3: the database runs in WAL
mode, and each flush commits and checkpoints the WAL into the main file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from abc import ABC, abstractmethod
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer

BAG_FORMAT_VERSION = 9


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str
    msgdef: str
    type_hash: str
    qos_profiles: tuple[Qos, ...]


@dataclass(frozen=True)
class StorageFile:
    """A storage file of the bag and what it holds."""

    name: str
    message_count: int = 0
    start_ns: int = 2**63 - 1
    end_ns: int = 0

    def with_message(self, timestamp_ns: int) -> StorageFile:
        return StorageFile(self.name, self.message_count + 1, min(self.start_ns, timestamp_ns),
                           max(self.end_ns, timestamp_ns))


class StorageFiles(ABC):
    """The storage side of a bag: one rosbags Writer at a time, and the files that are complete on disk."""

    def __init__(self) -> None:
        self.complete: list[StorageFile] = []
        self.durable_topics: list[BagTopic] = []
        """The topics whose definitions the complete files hold."""
        self.current: StorageFile
        self._writer: Writer
        self._topics: list[BagTopic] = []
        self._connections: dict[str, Connection] = {}

    def add_topic(self, topic: BagTopic) -> None:
        self._topics.append(topic)
        self._connect(topic)

    def _connect(self, topic: BagTopic) -> None:
        self._connections[topic.name] = self._writer.add_connection(
            topic.name, topic.msgtype, msgdef=topic.msgdef, rihs01=topic.type_hash,
            offered_qos_profiles=list(topic.qos_profiles))

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self.current = self.current.with_message(timestamp_ns)

    @abstractmethod
    def flush(self) -> None:
        """Make `current` and the topics durable and list them in `complete` and `durable_topics`."""

    @abstractmethod
    def close(self) -> None:
        """Finish the storage files; `complete` then lists all of them."""

    @abstractmethod
    def close_discarding_unflushed(self) -> None:
        """Close after an interruption (the writer may be mid-record), keeping what is durable: what the last flush
        made so, or everything written if the interruption came after the storage had made it durable, inside a
        flush's bookkeeping. `complete` then lists what the bag holds."""


class Sqlite3Files(StorageFiles):
    def __init__(self, bag: Path) -> None:
        super().__init__()
        self._writer = Writer(bag, version=BAG_FORMAT_VERSION, storage_plugin=StoragePlugin.SQLITE3)
        self._writer.open()
        self._database = self._writer.storage.conn
        self._database.execute('PRAGMA journal_mode=WAL')
        self._path = self._writer.storage.path
        self.current = StorageFile(self._path.name)
        self.flush()

    def flush(self) -> None:
        self._database.commit()
        self._database.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        self.complete = [self.current]
        self.durable_topics = list(self._topics)

    def close(self) -> None:
        self._writer.close()
        with sqlite3.connect(self._path) as database:
            database.execute('PRAGMA journal_mode=DELETE')
        database.close()
        self.complete = [self.current]
        self.durable_topics = list(self._topics)

    def close_discarding_unflushed(self) -> None:
        self._database.rollback()
        # A Ctrl-C lands between bytecodes, so it can come after commit() returned: the database, not the last
        # flush's bookkeeping, says whether the messages written since are in.
        (stored,) = self._database.execute('SELECT COUNT(*) FROM messages').fetchone()
        if stored != self.current.message_count:
            self.current = self.complete[0]
        self.close()


class McapSplits(StorageFiles):
    def __init__(self, bag: Path) -> None:
        super().__init__()
        bag.mkdir(parents=True)
        self._bag = bag
        self._open_split()

    def _split_name(self, index: int) -> str:
        return f'{self._bag.name}_{index}.mcap'

    def _open_split(self) -> None:
        index = len(self.complete)
        self._staging = self._bag / f'.{self._bag.name}_{index}.partial'
        self._writer = Writer(self._staging, version=BAG_FORMAT_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self.current = StorageFile(self._split_name(index))
        self._connections = {}
        for topic in self._topics:
            self._connect(topic)

    def _close_split(self) -> None:
        self._writer.close()
        storage_file = self._staging / f'{self._staging.name}.mcap'
        with storage_file.open('rb') as stream:
            os.fsync(stream.fileno())
        os.replace(storage_file, self._bag / self.current.name)
        shutil.rmtree(self._staging)
        self.complete.append(self.current)
        self.durable_topics = list(self._topics)

    def _holds_anything_new(self) -> bool:
        return bool(self.current.message_count) or len(self._topics) > len(self.durable_topics)

    def flush(self) -> None:
        if self._holds_anything_new():
            self._close_split()
            self._open_split()

    def close(self) -> None:
        if self._holds_anything_new() or not self.complete:
            self._close_split()
        else:
            self.close_discarding_unflushed()

    def close_discarding_unflushed(self) -> None:
        if (self._bag / self.current.name).exists() and self.current not in self.complete:
            # Interrupted after the split was closed and moved into the bag: it is complete.
            self.complete.append(self.current)
            self.durable_topics = list(self._topics)
        else:
            with suppress(Exception):
                self._writer.abort()
        shutil.rmtree(self._staging, ignore_errors=True)
