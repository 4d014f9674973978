"""What samples a set of indexed bags holds, and in which order they are drawn. Pure: nothing here reads a file.

- Episodes: /sim/episode events split a bag's timeline; a bag without them is one episode.
- Frames: the synchronized image sets of the chosen cameras (ssl_robot.sync's ApproximateTimeSynchronizer,
  fed in bag order), each belonging to the episode its stamp falls in; a frame's `time` is its index
  in the episode.
- Grasp triplets: (s_pre, o, s_post) images located by the stamps of a /sim/grasp_events event.
- Windows: runs of consecutive samples of one episode (grasps: of one bag), the unit of reading and caching.
- The batch plan: a worker holds up to `slots` windows and fills each batch with an even share of rows
  from each of them (see plan_batches), refilling a slot from its queue of windows when one runs dry.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ssl_robot import topics
from ssl_robot.data.bag_index import BagIndex, GroundTruthFlags, StampIndex
from ssl_robot.data.reader import ImageRef
from ssl_robot.events import CameraPose, decode_camera_poses
from ssl_robot.sync import ApproximateTimeSynchronizer

BEFORE_ALL_NS = -(2**63)
AFTER_ALL_NS = 2**63 - 1


@dataclass(frozen=True)
class Episode:
    id: int
    """Position in the dataset's episode list: the 'episode' of a batch row."""
    bag: int
    """Position of its bag in the dataset's bag list."""
    start_ns: int
    """Stamp of its /sim/episode event (BEFORE_ALL_NS when the bag has none)."""
    end_ns: int
    """Start of the next episode of the bag (AFTER_ALL_NS for the last)."""
    key: str
    """Names the episode the same way on every run: '<bag name>:<start stamp>'."""
    event: dict[str, Any] | None
    """The /sim/episode event (episode, seed, mode, behaviour, rig, cameras), None when the bag has none."""

    @property
    def rig(self) -> str:
        """The camera rig the episode was recorded with; '' when its bag does not say."""
        return str(self.event.get('rig', '')) if self.event else ''

    @property
    def camera_poses(self) -> dict[str, CameraPose]:
        """Each scene camera's pose in this episode (drawn per episode when the sim randomized the cameras); {} when
        its bag does not say."""
        return decode_camera_poses(self.event) if self.event else {}


def bag_episodes(index: BagIndex, bag: int, first_id: int) -> list[Episode]:
    """The episodes of one bag, numbered from first_id."""
    if not index.episodes:
        return [Episode(first_id, bag, BEFORE_ALL_NS, AFTER_ALL_NS, f'{index.path.name}:all', None)]
    starts = [topics.stamp_from_dict(event['stamp']) for event in index.episodes]
    ends = [*starts[1:], AFTER_ALL_NS]
    return [Episode(first_id + i, bag, start, end, f'{index.path.name}:{start}', event)
            for i, (start, end, event) in enumerate(zip(starts, ends, index.episodes))]


def episode_of(episodes: Sequence[Episode], stamps_ns: np.ndarray) -> np.ndarray:
    """For each stamp, the position in `episodes` (one bag's, in time order) it falls in; -1 before the first."""
    starts = np.array([episode.start_ns for episode in episodes], dtype=np.int64)
    return np.searchsorted(starts, stamps_ns, side='right') - 1


def held_out(keys: Sequence[str], val_fraction: float) -> set[int]:
    """Positions of the keys that form split 'val': the round(val_fraction * N) keys, at least one when
    val_fraction > 0 and N > 1, whose hashes are lowest. The choice depends on the keys alone, so it is
    the same on every run, whatever order the bags are given in."""
    if val_fraction <= 0 or len(keys) < 2:
        return set()
    count = min(max(1, round(val_fraction * len(keys))), len(keys) - 1)
    ranks = sorted(range(len(keys)), key=lambda i: hashlib.sha256(keys[i].encode()).digest())
    return set(ranks[:count])


# --- frames -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyncedFrames:
    """Synchronized image sets of V cameras, in emission order."""

    stamp_ns: np.ndarray
    """(N, V) header stamps."""
    log_ns: np.ndarray
    """(N, V) bag times, to find the images."""
    drops: dict[str, int]
    """The synchronizer's drop counts by reason."""

    @property
    def frame_stamp_ns(self) -> np.ndarray:
        """(N,) the stamp a frame is placed in time by: the newest of its set, as the synchronizer reports."""
        return self.stamp_ns.max(axis=1)


def synchronize(images: Sequence[StampIndex], max_interval_ns: int, queue_size: int) -> SyncedFrames:
    """Image sets, one image per camera within max_interval_ns, fed to the synchronizer in bag order (the
    order a live subscriber would have seen); with one camera every image is a set."""
    views = len(images)
    log_ns = np.concatenate([index.log_ns for index in images])
    stamp_ns = np.concatenate([index.stamp_ns for index in images])
    view = np.concatenate([np.full(len(index.log_ns), v) for v, index in enumerate(images)])
    arrival = np.lexsort((view, log_ns))
    names = [str(v) for v in range(views)]
    synchronizer = ApproximateTimeSynchronizer(names, queue_size=queue_size, max_interval_ns=max_interval_ns)
    stamps: list[list[int]] = []
    logs: list[list[int]] = []
    for i in arrival:
        for synced in synchronizer.add(names[view[i]], int(stamp_ns[i]), int(log_ns[i])):
            stamps.append([synced.stamps[name] for name in names])
            logs.append([synced.items[name] for name in names])
    return SyncedFrames(np.array(stamps, dtype=np.int64).reshape(-1, views),
                        np.array(logs, dtype=np.int64).reshape(-1, views), dict(synchronizer.drop_counts))


@dataclass(frozen=True)
class EpisodeFrames:
    """The synchronized frames of one episode; frame `time` is row `time`."""

    episode: Episode
    topics: tuple[str, ...]
    """The camera image topic of each view."""
    stamp_ns: np.ndarray
    """(T, V) header stamps."""
    log_ns: np.ndarray
    """(T, V) bag times."""
    labels: np.ndarray | None
    """(T, 3) bool ground truth (gripper closed, object lifted, gripper contact), if it was indexed."""

    def __len__(self) -> int:
        return len(self.stamp_ns)

    def ref(self, view: int, time: int) -> ImageRef:
        return ImageRef(self.topics[view], int(self.stamp_ns[time, view]), int(self.log_ns[time, view]))


def frames_by_episode(episodes: Sequence[Episode], frames: SyncedFrames, camera_topics: Sequence[str],
                      ground_truth: GroundTruthFlags | None) -> list[EpisodeFrames]:
    """One bag's frames split by episode; frames before the first episode event and episodes without
    frames are left out."""
    frame_stamps = frames.frame_stamp_ns
    owner = episode_of(episodes, frame_stamps)
    labels = ground_truth.at(frame_stamps) if ground_truth is not None else None
    result = []
    for position, episode in enumerate(episodes):
        rows = np.flatnonzero(owner == position)
        if len(rows):
            result.append(EpisodeFrames(episode, tuple(camera_topics), frames.stamp_ns[rows], frames.log_ns[rows],
                                        None if labels is None else labels[rows]))
    return result


# --- grasp triplets ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GraspTriplet:
    episode: int
    """Episode.id of the episode the grasp happened in."""
    pre: ImageRef
    """The scene before the grasp, from the grasp camera."""
    post: ImageRef
    """The scene after the grasp."""
    object: ImageRef | None
    """The object camera's image of the grasped object; None for a failed grasp (the event's o is null)."""
    pre_labels: ImageRef | None
    """The segmentation of the grasp camera at s_pre, when evaluation labels were asked for."""
    success: bool
    object_index: int
    """Index of the grasped (or, for a failed grasp, targeted) object; -1 when the event names none."""


def grasp_triplets(index: BagIndex, episodes: Sequence[Episode], scene_topic: str, object_topic: str,
                   segmentation_topic: str | None, tolerance_ns: int,
                   successful_only: bool) -> tuple[list[GraspTriplet], Counter[str]]:
    """The grasps of one bag whose images were recorded, and the number left out for each reason.

    Each image is the one nearest to the event's stamp on its topic, within tolerance_ns (the sim stamps
    them identically; a robot's grasp events may refer to its cameras only approximately).
    """
    triplets: list[GraspTriplet] = []
    skipped: Counter[str] = Counter()

    def locate(topic: str, stamp: dict[str, int] | None, labels: bool = False) -> ImageRef | None:
        if stamp is None:
            return None
        stamps = index.images[topic]
        position = stamps.nearest(topics.stamp_from_dict(stamp), tolerance_ns)
        return None if position is None else ImageRef(topic, int(stamps.stamp_ns[position]),
                                                      int(stamps.log_ns[position]), labels)

    for event in index.grasps:
        success = bool(event['success'])
        if successful_only and not success:
            skipped['failed grasp'] += 1
            continue
        pre, post = locate(scene_topic, event['s_pre']), locate(scene_topic, event['s_post'])
        shown = locate(object_topic, event['o'])
        pre_labels = locate(segmentation_topic, event['s_pre'], labels=True) if segmentation_topic else None
        if pre is None or post is None:
            skipped[f'no {scene_topic} image at s_pre/s_post'] += 1
        elif success and shown is None:
            skipped[f'no {object_topic} image at o'] += 1
        elif segmentation_topic is not None and pre_labels is None:
            skipped[f'no {segmentation_topic} image at s_pre'] += 1
        else:
            owner = int(episode_of(episodes, np.array([pre.stamp_ns]))[0])
            if owner < 0:
                skipped['grasp before the first episode'] += 1
                continue
            target = (event.get('object') or {}).get('index')
            triplets.append(GraspTriplet(episodes[owner].id, pre, post, shown if success else None, pre_labels,
                                         success, -1 if target is None else int(target)))
    return triplets, skipped


# --- windows and the batch plan ---------------------------------------------------------------------------

class Window(NamedTuple):
    """Samples start..stop-1 of sequence `sequence` (an EpisodeFrames, or a bag's grasp triplets)."""

    sequence: int
    start: int
    stop: int


def split_into_windows(sequence: int, start: int, stop: int, window_samples: int) -> list[Window]:
    """[start, stop) cut into the fewest windows of at most window_samples samples, of near-equal sizes."""
    count = -(-(stop - start) // window_samples)
    bounds = np.linspace(start, stop, count + 1).round().astype(int) if count else []
    return [Window(sequence, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def stratified_order(count: int, group_size: int, rng: np.random.Generator | None) -> list[int]:
    """0..count-1 arranged as consecutive groups of group_size spread over the whole range.

    The range is cut into group_size strata of near-equal length; group j holds the j-th member of each
    stratum, so the members of a group lie about count / group_size apart. With rng, members are drawn
    at random within their stratum and the full groups come in random order; a short last group (when
    group_size does not divide count) stays last.
    """
    strata = [stratum for stratum in np.array_split(np.arange(count), group_size) if len(stratum)]
    if rng is not None:
        strata = [rng.permutation(stratum) for stratum in strata]
    longest = max((len(stratum) for stratum in strata), default=0)
    groups = [[int(stratum[j]) for stratum in strata if j < len(stratum)] for j in range(longest)]
    full = [group for group in groups if len(group) == len(strata)]
    if rng is not None:
        full = [full[i] for i in rng.permutation(len(full))]
    return [member for group in full + groups[len(full):] for member in group]


@dataclass(frozen=True)
class BatchPlan:
    rows: list[tuple[Hashable, int]]
    """(window, unit): the window's key and the unit's position in its order."""
    finished: list[Hashable]
    """Windows that have no units left after this batch, so their images can go."""


def plan_batches(windows: Iterable[tuple[Hashable, int]], slots: int, batch_units: int,
                 drop_last: bool) -> Iterator[BatchPlan]:
    """Batches of batch_units units from windows, given as (key, unit count) and used in their order.

    Up to `slots` windows are active at once; each batch takes an even share (batch_units / active, the
    first ones one more when it does not divide) of the next units of every active window, and when a
    window has fewer left, the others make up the difference. An emptied window is replaced by the next
    one; more than `slots` windows are opened only when the active ones together cannot fill a batch.
    Every unit is used once. windows may be endless (epoch after epoch); when it ends, the last batch
    may be smaller, and with drop_last it is left out. Windows are taken from the iterable only as they
    are opened, so a caller can prepare a window as it is drawn.
    """
    queue = iter(windows)
    counts: dict[Hashable, int] = {}
    used: dict[Hashable, int] = {}
    exhausted = False
    while True:
        while not exhausted and (len(used) < slots or sum(counts[w] - n for w, n in used.items()) < batch_units):
            key, count = next(queue, (None, None))
            if count is None:
                exhausted = True
            elif count:
                counts[key], used[key] = count, 0
        if not used:
            return
        active = list(used)
        remaining = [counts[w] - used[w] for w in active]
        share, extra = divmod(batch_units, len(active))
        take = [min(share + (i < extra), left) for i, left in enumerate(remaining)]
        shortfall = batch_units - sum(take)
        for i, left in enumerate(remaining):
            more = min(shortfall, left - take[i])
            take[i] += more
            shortfall -= more
        if shortfall and drop_last:
            return
        rows = [(w, used[w] + j) for w, n in zip(active, take) for j in range(n)]
        finished = []
        for w, n in zip(active, take):
            used[w] += n
            if used[w] == counts[w]:
                finished.append(w)
                del used[w], counts[w]
        yield BatchPlan(rows, finished)


def shard_windows(window_count: int, shard: int, shards: int, rng: np.random.Generator | None) -> list[int]:
    """The windows of one shard (a DataLoader worker of one training process) for one epoch: every
    shards-th of the epoch's order, which is random with rng and the natural order without."""
    order = rng.permutation(window_count) if rng is not None else np.arange(window_count)
    return [int(w) for w in order[shard::shards]]
