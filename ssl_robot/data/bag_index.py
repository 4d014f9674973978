"""The index pass over one bag: one streaming pass that keeps only what is small, so that a bag larger than memory
trains: the header stamp of every image (read from the first bytes of its CDR record, the pixels are never decoded),
the episode and grasp events, and, when asked, three flags per ground-truth tick.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssl_robot import topics
from ssl_robot.data.reader import BagError, deserialize, guarded, image_stamp, open_reader, problem_text


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
        for connection, log_ns, raw in guarded(path, reader.messages(connections)):
            topic = connection.topic
            if topic in stamps:
                stamps[topic][0].append(log_ns)
                stamps[topic][1].append(image_stamp(path, topic, log_ns, raw))
                continue
            text = deserialize(path, topic, connection.msgtype, raw).data
            try:
                event = topics.decode_event(text, EVENT_KINDS[topic])
                if topic == topics.GROUND_TRUTH:
                    ground_truth_rows.append(_ground_truth_row(event))
                else:
                    events[topic].append(event)
            except (ValueError, KeyError, TypeError) as err:
                raise BagError(path, f'a {topic} message does not follow ssl_robot.topics: '
                                     f'{problem_text(err)}') from err
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
