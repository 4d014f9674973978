"""Training batches from rosbag2 bags, streamed: a bag larger than memory trains.

    stream = make_dataset('tcn', ['bags/motion'], train_config.data, 'train', batch_size=32, seed=0)
    loader = DataLoader(stream, batch_size=None, num_workers=2)   # the stream yields whole batches

make_dataset() first indexes the bags (index_recordings: one pass keeping stamps and events only), then
returns a BatchStream, a torch IterableDataset of batch dicts. Each DataLoader worker opens its own
readers and takes every N-th window of the epoch's window order (windows: runs of consecutive samples
of one episode, the unit of reading; N = workers x distributed processes); it holds up to
`episodes_per_batch` windows at once and builds every batch from an even share of each. An epoch uses
every sample once; batches run on from one epoch into the next, so near an epoch's end a batch may hold a
sample of both. Decoded images live in a WindowCache bounded to ReadOptions.cache_images images.
Everything random derives from (seed, epoch, worker), so a given seed and worker count give the same
batches on every run.

Batch composition, B = batch_size, E = episodes_per_batch, images float32 in [0, 1], (C, H, W):
- tcn:    {'frames': (B, V, C, H, W), 'times', 'episode'}: B/E distinct times from each of E windows (E
          episodes, or parts of long ones). A window's times are drawn in groups spread over it (one per
          stratum of its frames), so each row has negatives from its own episode far in time.
- mftcn:  {'clips': (B, V, n, C, H, W), 'times', 'episode'}: as tcn; the clip of time t holds the frames
          t-(n-1)s, ..., t, so t runs from (n-1)s.
- svtcn:  {'frames': (B, C, H, W), 'times', 'episode'} from the first camera: B/2 (anchor, positive) row
          pairs, the positive at most positive_window frames from its anchor; anchors spread as for tcn.
- betavae: {'state', 'times', 'episode'}; ccvae adds 'context', the first frame of the state's episode
          (same camera). From the first camera; rows drawn at random from the E windows.
- grasp2vec: {'pre', 'post', 'object', 'episode'}: successful grasps, s_pre/s_post from the grasp camera
          (ReadOptions.grasp_camera, default the first camera), o from the object camera.
With labels=True, frame rows also get 'gripper_closed', 'object_lifted', 'gripper_contact' (B,) bool from
/sim/ground_truth, and grasp2vec includes failed grasps and adds 'success', 'object_index' and 'pre_mask'
(B, H, W) bool, the grasped object in the grasp camera's segmentation at s_pre ('object' is black for a
failed grasp: no o image exists).

'times' is the frame's index within its episode and 'episode' its Episode.id (both int64).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ssl_robot import topics
from ssl_robot.data.reader import (IMAGE_TYPE, BagError, BagIndex, BagReader, ImageRef, bag_topics, find_bags,
                                   index_bag, require_topics, rgb_to_tensor)
from ssl_robot.data.samplers import (BatchPlan, Episode, EpisodeFrames, GraspTriplet, Window, bag_episodes,
                                     frames_by_episode, grasp_triplets, held_out, plan_batches, shard_windows,
                                     split_into_windows, stratified_order, synchronize)
from ssl_robot.models.registry import GRASP2VEC_FAMILY, method_spec

SPLITS = ('train', 'val', 'all')
OBJECT_CAMERA_TOPIC = topics.camera_image(topics.OBJECT_CAMERA)
SCENE_CAMERA_PATTERN = re.compile(r'^/cameras/[^/]+/image_raw$')
LABEL_KEYS = ('gripper_closed', 'object_lifted', 'gripper_contact')
IMAGE_KEYS = frozenset({'frames', 'clips', 'state', 'context', 'pre', 'post', 'object'})


@dataclass(frozen=True)
class ReadOptions:
    """How bags are read; the defaults suit both the sim's bags and a robot's."""

    sync_max_interval_ns: int = 10_000_000
    """Largest spread of the stamps of one synchronized frame set. The sim stamps its cameras identically;
    a robot's free-running cameras are up to one frame period apart, so keep it under half of one."""
    sync_queue_size: int = 10
    """Images per camera the synchronizer keeps waiting for a match."""
    window_samples: int = 256
    """Samples per window (the unit of reading and caching): time steps of one episode, or grasps of one bag."""
    cache_images: int | None = None
    """Decoded images a worker may hold. None: enough for episodes_per_batch + 1 of the largest windows,
    so no window is read twice in an epoch; smaller bounds memory further at the cost of re-reading."""
    grasp_camera: str | None = None
    """grasp2vec: the scene camera topic of s_pre and s_post. None: the first camera."""
    object_camera: str = OBJECT_CAMERA_TOPIC
    """grasp2vec: the topic of the object images (o)."""

    def __post_init__(self) -> None:
        if self.sync_max_interval_ns < 0:
            raise ValueError(f'ReadOptions.sync_max_interval_ns must be >= 0, got {self.sync_max_interval_ns}')
        for name in ('sync_queue_size', 'window_samples', 'cache_images'):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f'ReadOptions.{name} must be >= 1, got {value}')


def _reads_grasps(method: str) -> bool:
    """Whether the method learns from grasps (scene before and after, the grasped object) rather than frames."""
    return method_spec(method).family == GRASP2VEC_FAMILY


def _check_method(method: str) -> None:
    method_spec(method)  # ValueError naming the known methods


def segmentation_topic(image_topic: str) -> str:
    """The segmentation topic published next to a camera's image topic (/cameras/<name>/segmentation)."""
    if not image_topic.endswith('/image_raw'):
        raise ValueError(f'cannot tell the segmentation topic of camera topic {image_topic!r}: it does not end '
                         f'in /image_raw')
    return image_topic[:-len('image_raw')] + 'segmentation'


def required_topics(method: str, cameras: Sequence[str] = (), *, labels: bool = False,
                    object_camera: str = OBJECT_CAMERA_TOPIC) -> list[str]:
    """The topics a bag needs for method. cameras: the camera image topics the method reads, in view order
    (tcn, mftcn: the V views; the others: one camera, for grasp2vec the grasp camera); left empty, only
    the topics that do not depend on the camera choice are listed. labels: evaluation labels too.

    /sim/episode is not required: a bag without it is one episode.
    """
    _check_method(method)
    if _reads_grasps(method):
        scene = list(cameras[:1])
        return [*scene, object_camera, topics.GRASP_EVENTS, *(segmentation_topic(c) for c in scene if labels)]
    return [*cameras, *([topics.GROUND_TRUTH] if labels else [])]


def _config_value(config: Any, name: str, method: str) -> int:
    value = getattr(config, name)
    if value is None:
        raise ValueError(f'DataConfig.{name} is null: {method} needs it (TrainConfig fills it from the model '
                         f'config; a DataConfig made on its own must set it)')
    return int(value)


def _method_cameras(method: str, config: Any, first_bag: Path, available: dict[str, str],
                    options: ReadOptions) -> tuple[str, ...]:
    """The camera topics the method reads, in view order."""
    if config.cameras == 'auto':
        cameras = tuple(sorted(topic for topic, msgtype in available.items()
                               if msgtype == IMAGE_TYPE and SCENE_CAMERA_PATTERN.match(topic)))
        if not cameras:
            raise BagError(first_bag, 'has no /cameras/<name>/image_raw topics; name the camera topics in '
                                      'DataConfig.cameras')
    else:
        cameras = tuple(config.cameras)
    if _reads_grasps(method):
        return (options.grasp_camera or cameras[0],)
    views = config.views if method_spec(method).multi_view else 1
    if len(cameras) < views:
        raise BagError(first_bag, f'{method} needs {views} camera views but only {len(cameras)} camera topic(s) '
                                  f'are available: {", ".join(cameras)}')
    return cameras[:views]


@dataclass
class Recordings:
    """The index of a set of bags for one method: episodes and their frames, or the grasps."""

    method: str
    bags: list[Path]
    cameras: tuple[str, ...]
    """Camera image topics read, in view order (grasp2vec: the grasp camera)."""
    episodes: list[Episode]
    frames: list[EpisodeFrames] = field(default_factory=list)
    """Frame methods: the synchronized frames of every episode that has some."""
    grasps: list[list[GraspTriplet]] = field(default_factory=list)
    """grasp2vec: each bag's usable grasps, in time order."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Grasps left out, by reason."""
    sync_drops: Counter[str] = field(default_factory=Counter)
    """Images the synchronizer dropped, by reason."""

    def frames_of(self, episode: int) -> EpisodeFrames:
        for frames in self.frames:
            if frames.episode.id == episode:
                return frames
        raise ValueError(f'episode {episode} has no frames in {", ".join(map(str, self.bags))} '
                         f'(episodes with frames: {[f.episode.id for f in self.frames]})')

    def split_episodes(self, split: str, val_fraction: float) -> set[int]:
        """Ids of the episodes in split ('train', 'val' or 'all')."""
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if split == 'all':
            return {episode.id for episode in self.episodes}
        val = held_out([episode.key for episode in self.episodes], val_fraction)
        return {episode.id for position, episode in enumerate(self.episodes) if (position in val) == (split == 'val')}


def index_recordings(method: str, bags: Sequence[str | Path], config: Any, *, labels: bool = False,
                     options: ReadOptions = ReadOptions()) -> Recordings:
    """Index the bags for method (config: a DataConfig); BagError if one is unreadable or lacks a topic."""
    _check_method(method)
    paths = find_bags(bags)
    available = [bag_topics(path) for path in paths]
    cameras = _method_cameras(method, config, paths[0], available[0], options)
    image_topics = list(cameras)
    if _reads_grasps(method):
        image_topics += [options.object_camera, *([segmentation_topic(cameras[0])] if labels else [])]
    for path, topics_of_bag in zip(paths, available):
        require_topics(path, topics_of_bag, required_topics(method, cameras, labels=labels,
                                                            object_camera=options.object_camera), method)
        require_topics(path, topics_of_bag, image_topics, method, IMAGE_TYPE)
    recordings = Recordings(method, paths, cameras, [])
    for bag, path in enumerate(paths):
        index = index_bag(path, image_topics, ground_truth=labels and not _reads_grasps(method))
        episodes = bag_episodes(index, bag, len(recordings.episodes))
        recordings.episodes += episodes
        if _reads_grasps(method):
            _add_grasps(recordings, index, episodes, labels, options)
        else:
            _add_frames(recordings, index, episodes, labels, options)
    return recordings


def _add_frames(recordings: Recordings, index: BagIndex, episodes: list[Episode], labels: bool,
                options: ReadOptions) -> None:
    if labels and (index.ground_truth is None or not len(index.ground_truth.stamp_ns)):
        raise BagError(index.path, f'has no {topics.GROUND_TRUTH} messages to label frames with')
    synced = synchronize([index.images[topic] for topic in recordings.cameras], options.sync_max_interval_ns,
                         options.sync_queue_size)
    recordings.sync_drops.update({reason: n for reason, n in synced.drops.items() if n})
    recordings.frames += frames_by_episode(episodes, synced, recordings.cameras, index.ground_truth)


def _add_grasps(recordings: Recordings, index: BagIndex, episodes: list[Episode], labels: bool,
                options: ReadOptions) -> None:
    scene = recordings.cameras[0]
    triplets, skipped = grasp_triplets(index, episodes, scene, options.object_camera,
                                       segmentation_topic(scene) if labels else None,
                                       options.sync_max_interval_ns, successful_only=not labels)
    recordings.grasps.append(triplets)
    recordings.skipped.update(skipped)


# --- per-method samples -----------------------------------------------------------------------------------

Row = dict[str, Any]
Images = dict[ImageRef, np.ndarray]


class _Samples(ABC):
    """One method's samples of one split: the windows they are read in, the units a window is drawn in
    (a unit is one row, or an (anchor, positive) pair of rows), the images a unit needs, and its rows."""

    rows_per_unit = 1

    @abstractmethod
    def windows(self, window_samples: int) -> list[Window]:
        """The windows of the split's samples."""

    def units(self, window: Window, group_size: int, rng: np.random.Generator | None) -> list[Any]:
        """The window's units in the order they are used; group_size: units one batch takes from it."""
        samples = np.arange(window.start, window.stop)
        return [int(s) for s in (rng.permutation(samples) if rng is not None else samples)]

    @abstractmethod
    def refs(self, window: Window, unit: Any) -> list[ImageRef]:
        """The images the unit's rows show."""

    @abstractmethod
    def rows(self, window: Window, unit: Any, images: Images) -> list[Row]:
        """The unit's rows, its images taken from images."""

    @abstractmethod
    def image_bound(self, window: Window) -> int:
        """At most this many distinct images are read for the window."""

    @abstractmethod
    def bag_of(self, window: Window) -> int:
        """Position of the bag the window's images are in."""


class _FrameSamples(_Samples):
    """Samples are time steps of episodes; a window is a run of them in one episode."""

    first_time = 0
    """The earliest usable time of an episode (clips need frames before their time)."""

    def __init__(self, frames: list[EpisodeFrames], labels: bool) -> None:
        self.frames = frames
        self.labels = labels

    def windows(self, window_samples: int) -> list[Window]:
        return [window for sequence, episode in enumerate(self.frames) if len(episode) > self.first_time
                for window in split_into_windows(sequence, self.first_time, len(episode), window_samples)]

    def bag_of(self, window: Window) -> int:
        return self.frames[window.sequence].episode.bag

    def _row(self, episode: EpisodeFrames, time: int) -> Row:
        row: Row = {'times': time, 'episode': episode.episode.id}
        if self.labels:
            row.update(zip(LABEL_KEYS, (bool(flag) for flag in episode.labels[time])))
        return row


class _ClipSamples(_FrameSamples):
    """tcn (one-frame clips, key 'frames') and mftcn (key 'clips'): all views of the clip ending at a time."""

    def __init__(self, frames: list[EpisodeFrames], labels: bool, clip_frames: int | None, clip_stride: int) -> None:
        super().__init__(frames, labels)
        self.key = 'frames' if clip_frames is None else 'clips'
        self.offsets = [0] if clip_frames is None else [clip_stride * j for j in range(clip_frames - 1, -1, -1)]
        self.first_time = self.offsets[0]

    def units(self, window: Window, group_size: int, rng: np.random.Generator | None) -> list[Any]:
        return [window.start + t for t in stratified_order(window.stop - window.start, group_size, rng)]

    def refs(self, window: Window, unit: int) -> list[ImageRef]:
        episode = self.frames[window.sequence]
        return [episode.ref(view, unit - offset) for view in range(len(episode.topics)) for offset in self.offsets]

    def rows(self, window: Window, unit: int, images: Images) -> list[Row]:
        episode = self.frames[window.sequence]
        views = np.stack([np.stack([images[episode.ref(view, unit - offset)] for offset in self.offsets])
                          for view in range(len(episode.topics))])
        return [{self.key: views if self.key == 'clips' else views[:, 0], **self._row(episode, unit)}]

    def image_bound(self, window: Window) -> int:
        return (window.stop - window.start + self.first_time) * len(self.frames[window.sequence].topics)


class _PairSamples(_FrameSamples):
    """svtcn: (anchor, positive) pairs of one camera's frames, the positive 1..positive_window frames away."""

    rows_per_unit = 2

    def __init__(self, frames: list[EpisodeFrames], labels: bool, positive_window: int) -> None:
        super().__init__(frames, labels)
        self.positive_window = positive_window

    def units(self, window: Window, group_size: int, rng: np.random.Generator | None) -> list[Any]:
        length = len(self.frames[window.sequence])
        units = []
        for anchor in (window.start + t for t in stratified_order(window.stop - window.start, group_size, rng)):
            distance = int(rng.integers(1, self.positive_window + 1)) if rng is not None else 1
            positive = anchor + distance if anchor + distance < length else anchor - distance
            units.append((anchor, min(max(positive, 0), length - 1)))
        return units

    def refs(self, window: Window, unit: tuple[int, int]) -> list[ImageRef]:
        episode = self.frames[window.sequence]
        return [episode.ref(0, time) for time in unit]

    def rows(self, window: Window, unit: tuple[int, int], images: Images) -> list[Row]:
        episode = self.frames[window.sequence]
        return [{'frames': images[episode.ref(0, time)], **self._row(episode, time)} for time in unit]

    def image_bound(self, window: Window) -> int:
        return window.stop - window.start + 2 * self.positive_window


class _StateSamples(_FrameSamples):
    """betavae and ccvae: single frames of one camera, with the episode's first frame as context for ccvae."""

    def __init__(self, frames: list[EpisodeFrames], labels: bool, context: bool) -> None:
        super().__init__(frames, labels)
        self.context = context

    def refs(self, window: Window, unit: int) -> list[ImageRef]:
        episode = self.frames[window.sequence]
        return [episode.ref(0, unit), *([episode.ref(0, 0)] if self.context else [])]

    def rows(self, window: Window, unit: int, images: Images) -> list[Row]:
        episode = self.frames[window.sequence]
        row: Row = {'state': images[episode.ref(0, unit)], **self._row(episode, unit)}
        if self.context:
            row['context'] = images[episode.ref(0, 0)]
        return [row]

    def image_bound(self, window: Window) -> int:
        return window.stop - window.start + int(self.context)


class _GraspSamples(_Samples):
    """grasp2vec: grasp triplets; a window is a run of one bag's grasps in time order."""

    def __init__(self, grasps: list[list[GraspTriplet]], labels: bool) -> None:
        self.grasps = grasps
        self.labels = labels

    def windows(self, window_samples: int) -> list[Window]:
        return [window for bag, triplets in enumerate(self.grasps)
                for window in split_into_windows(bag, 0, len(triplets), window_samples)]

    def bag_of(self, window: Window) -> int:
        return window.sequence

    def refs(self, window: Window, unit: int) -> list[ImageRef]:
        grasp = self.grasps[window.sequence][unit]
        return [ref for ref in (grasp.pre, grasp.post, grasp.object, grasp.pre_labels) if ref is not None]

    def rows(self, window: Window, unit: int, images: Images) -> list[Row]:
        grasp = self.grasps[window.sequence][unit]
        pre = images[grasp.pre]
        row: Row = {'pre': pre, 'post': images[grasp.post], 'episode': grasp.episode,
                    'object': images[grasp.object] if grasp.object is not None else np.zeros_like(pre)}
        if self.labels:
            labels = images[grasp.pre_labels]
            # Label 0 is the background: a grasp that names no object (index -1) has an empty mask.
            mask = labels == grasp.object_index + 1 if grasp.object_index >= 0 else np.zeros(labels.shape, bool)
            row.update(success=grasp.success, object_index=grasp.object_index, pre_mask=mask)
        return [row]

    def image_bound(self, window: Window) -> int:
        return (window.stop - window.start) * (4 if self.labels else 3)


def collate(rows: list[Row]) -> dict[str, torch.Tensor]:
    """Rows stacked into a batch: images as float32 (..., C, H, W) in [0, 1], the rest as int64 or bool."""
    batch = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows])
        batch[key] = rgb_to_tensor(values) if key in IMAGE_KEYS else torch.from_numpy(values)
    return batch


# --- streaming --------------------------------------------------------------------------------------------

class WindowCache:
    """The decoded images of recently used windows, least recently used evicted first, never more than
    `capacity` images in all; `held` and `peak` count them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self.peak = 0
        self.loads = 0
        self._windows: OrderedDict[Hashable, Images] = OrderedDict()

    def get(self, key: Hashable, size: int, load: Callable[[], Images]) -> Images:
        """The images of window key, loading them (at most size images) if they are not held."""
        if key in self._windows:
            self._windows.move_to_end(key)
            return self._windows[key]
        while self._windows and self.held + size > self.capacity:
            self.release(next(iter(self._windows)))
        images = load()
        self.loads += 1
        self._windows[key] = images
        self.held += len(images)
        self.peak = max(self.peak, self.held)
        return images

    def release(self, key: Hashable) -> None:
        images = self._windows.pop(key, None)
        if images is not None:
            self.held -= len(images)

    def clear(self) -> None:
        for key in list(self._windows):
            self.release(key)


class BatchStream(IterableDataset):
    """Batches of one method and split, streamed from the bags; wrap it in DataLoader(batch_size=None)."""

    def __init__(self, recordings: Recordings, samples: _Samples, split: str, *, batch_size: int, slots: int,
                 image_size: int, seed: int, epochs: int | None, shuffle: bool, drop_last: bool,
                 options: ReadOptions, shard: tuple[int, int]) -> None:
        super().__init__()
        if batch_size % samples.rows_per_unit:
            raise ValueError(f'batch_size {batch_size} must be a multiple of {samples.rows_per_unit} for '
                             f'{recordings.method}: its rows come in (anchor, positive) pairs')
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f'shard {shard} must be (index, count) with 0 <= index < count')
        if epochs is not None and epochs < 1:
            raise ValueError(f'epochs must be >= 1 or None (endless), got {epochs}')
        self.recordings = recordings
        self.samples = samples
        self.split = split
        self.batch_units = batch_size // samples.rows_per_unit
        self.slots = slots
        self.image_size = image_size
        self.seed = seed
        self.epochs = epochs
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.shard = shard
        self.windows = samples.windows(options.window_samples)
        self.readers = [BagReader(path) for path in recordings.bags]
        largest = max(samples.image_bound(window) for window in self.windows)
        self.cache_images = options.cache_images or (slots + 1) * largest
        if self.cache_images < largest:
            raise ValueError(f'ReadOptions.cache_images {self.cache_images} is less than the {largest} images of '
                             f'the largest window: raise it or lower window_samples ({options.window_samples})')
        self.cache: WindowCache | None = None
        """The cache of the latest iteration in this process, for inspection."""

    @property
    def sample_count(self) -> int:
        """Units (rows; svtcn: row pairs) in one pass over the split."""
        return sum(window.stop - window.start for window in self.windows)

    def _worker_shard(self) -> tuple[int, int]:
        worker = get_worker_info()
        index, count = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        return self.shard[0] * count + index, self.shard[1] * count

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard, shards = self._worker_shard()
        self.cache = cache = WindowCache(self.cache_images)
        drawn: dict[tuple[int, int], tuple[Window, list[Any]]] = {}
        supply = self._supply(self._windows_for(shards), shard, shards, drawn)
        try:
            for plan in plan_batches(supply, self.slots, self.batch_units, self.drop_last):
                yield self._assemble(plan, drawn, cache)
        finally:
            cache.clear()
            for reader in self.readers:
                reader.close()

    def _windows_for(self, shards: int) -> list[Window]:
        """The windows, cut finer when there are fewer than shards, so that no worker is left without any."""
        if len(self.windows) >= shards:
            return self.windows
        return self.samples.windows(max(1, self.sample_count // shards))

    def _supply(self, windows: list[Window], shard: int, shards: int,
                drawn: dict[tuple[int, int], tuple[Window, list[Any]]]) -> Iterator[tuple[tuple[int, int], int]]:
        """The shard's windows, epoch after epoch, as (key, unit count) for plan_batches; each window's units
        are drawn as the plan opens it and kept in drawn under its key. Batches run on across epochs, so a
        shard with fewer samples than a batch still fills whole batches."""
        group_size = max(1, self.batch_units // self.slots)
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            order_rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
            unit_rng = np.random.default_rng([self.seed, epoch, shard, shards]) if self.shuffle else None
            mine = shard_windows(len(windows), shard, shards, order_rng)
            if not mine:
                if self.epochs is None:
                    raise ValueError(f'{self.recordings.method} split {self.split!r} has {self.sample_count} '
                                     f'samples, fewer than the {shards} worker shards reading it: use fewer '
                                     f'DataLoader workers')
                return
            for window in mine:
                units = self.samples.units(windows[window], group_size, unit_rng)
                drawn[epoch, window] = windows[window], units
                yield (epoch, window), len(units)
            epoch += 1

    def _assemble(self, plan: BatchPlan, drawn: dict[tuple[int, int], tuple[Window, list[Any]]],
                  cache: WindowCache) -> dict[str, torch.Tensor]:
        rows: list[list[Row]] = [[] for _ in plan.rows]
        by_window: dict[tuple[int, int], list[int]] = {}
        for position, (key, _) in enumerate(plan.rows):
            by_window.setdefault(key, []).append(position)
        for key, positions in by_window.items():
            window, units = drawn[key]
            images = cache.get(key, self.samples.image_bound(window), lambda: self._read(window, units))
            for position in positions:
                rows[position] = self.samples.rows(window, units[plan.rows[position][1]], images)
        for key in plan.finished:
            cache.release(key)
            del drawn[key]
        return collate([row for unit_rows in rows for row in unit_rows])

    def _read(self, window: Window, units: list[Any]) -> Images:
        refs = {ref for unit in units for ref in self.samples.refs(window, unit)}
        return self.readers[self.samples.bag_of(window)].read_images(refs, self.image_size)


def _samples(recordings: Recordings, config: Any, episodes: set[int], labels: bool) -> _Samples:
    method = recordings.method
    if _reads_grasps(method):
        return _GraspSamples([[g for g in triplets if g.episode in episodes] for triplets in recordings.grasps],
                             labels)
    frames = [f for f in recordings.frames if f.episode.id in episodes]
    if method == 'tcn':
        return _ClipSamples(frames, labels, None, 1)
    if method == 'mftcn':
        return _ClipSamples(frames, labels, _config_value(config, 'clip_frames', method),
                            _config_value(config, 'clip_stride', method))
    if method == 'svtcn':
        return _PairSamples(frames, labels, _config_value(config, 'positive_window', method))
    return _StateSamples(frames, labels, context=method_spec(method).needs_context)


def _no_samples_reason(recordings: Recordings, split: str, episodes: set[int], samples: _Samples,
                       val_fraction: float) -> str:
    if not episodes:
        return (f'split {split!r} holds none of the {len(recordings.episodes)} episode(s) '
                f'(val_fraction {val_fraction})')
    if _reads_grasps(recordings.method):
        reasons = ', '.join(f'{n} {reason}' for reason, n in recordings.skipped.most_common()) or 'none recorded'
        return f'no usable grasps in split {split!r} (grasps left out: {reasons})'
    if not recordings.frames:
        drops = ', '.join(f'{n} {reason}' for reason, n in recordings.sync_drops.most_common()) or 'no images'
        return (f'no synchronized frames of {", ".join(recordings.cameras)} (synchronizer drops: {drops}); '
                f'a robot\'s cameras may need a larger ReadOptions.sync_max_interval_ns')
    if isinstance(samples, _FrameSamples) and samples.first_time:
        longest = max((len(f) for f in samples.frames), default=0)
        return (f'no episode of split {split!r} has the {samples.first_time + 1} frames a clip spans '
                f'(the longest has {longest})')
    return f'split {split!r} has no frames'


def make_dataset(method: str, bags: Sequence[str | Path], config: Any, split: str = 'train', *, batch_size: int,
                 seed: int = 0, epochs: int | None = None, shuffle: bool | None = None, drop_last: bool | None = None,
                 labels: bool = False, options: ReadOptions = ReadOptions(), shard: tuple[int, int] = (0, 1),
                 recordings: Recordings | None = None) -> BatchStream:
    """A stream of batch dicts for method from the bags (see the module docstring for their contents).

    config: a DataConfig (cameras, views, image_size, clip_frames, clip_stride, positive_window,
    episodes_per_batch, val_fraction). split: 'train', 'val' (val_fraction of the episodes, the same on
    every run) or 'all'. epochs: passes over the split; None: endless for 'train', one pass otherwise.
    shuffle and drop_last (leave out a last, smaller batch) default to True for 'train' and False
    otherwise; with shuffle False the windows and their samples come in time order. labels: add the evaluation labels. shard: (rank,
    world size) of a distributed run, so that its processes read disjoint windows. recordings: an index
    made earlier by index_recordings for the same method and labels, to skip the index pass.
    """
    if recordings is None:
        recordings = index_recordings(method, bags, config, labels=labels, options=options)
    elif recordings.method != method:
        raise ValueError(f'recordings were indexed for {recordings.method!r}, not {method!r}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    episodes = recordings.split_episodes(split, config.val_fraction)
    samples = _samples(recordings, config, episodes, labels)
    if not samples.windows(options.window_samples):
        raise BagError(recordings.bags, f'{method}: zero usable samples: '
                                        f'{_no_samples_reason(recordings, split, episodes, samples, config.val_fraction)}')
    training = split == 'train'
    return BatchStream(recordings, samples, split, batch_size=batch_size, slots=config.episodes_per_batch,
                       image_size=_config_value(config, 'image_size', method), seed=seed,
                       epochs=epochs if epochs is not None or training else 1,
                       shuffle=training if shuffle is None else shuffle,
                       drop_last=training if drop_last is None else drop_last, options=options, shard=shard)


# --- whole episodes, for plots ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EpisodeFrame:
    time: int
    """Index of the frame in its episode (the 'times' of the batches)."""
    stamp_ns: int
    """The newest header stamp of the frame's synchronized set."""
    images: list[np.ndarray]
    """One (H, W, 3) uint8 RGB image per camera view, at the bag's resolution unless image_size was given."""
    labels: dict[str, bool] | None
    """gripper_closed, object_lifted, gripper_contact, if the recordings were indexed with labels."""


def episode_frames(recordings: Recordings, episode: int, *, image_size: int | None = None,
                   window_samples: int = ReadOptions.window_samples) -> Iterator[EpisodeFrame]:
    """The synchronized frames of one episode in time order, for plotting embedding trajectories; read a
    window of window_samples frames at a time, so memory stays bounded however long the episode."""
    frames = recordings.frames_of(episode)
    reader = BagReader(recordings.bags[frames.episode.bag])
    views = range(len(frames.topics))
    try:
        for window in split_into_windows(0, 0, len(frames), window_samples):
            times = range(window.start, window.stop)
            images = reader.read_images({frames.ref(view, t) for t in times for view in views}, image_size)
            for t in times:
                yield EpisodeFrame(t, int(frames.stamp_ns[t].max()), [images[frames.ref(view, t)] for view in views],
                                   None if frames.labels is None else dict(zip(LABEL_KEYS, map(bool, frames.labels[t]))))
    finally:
        reader.close()
