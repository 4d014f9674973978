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

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ssl_robot.data.reader import BagError, BagReader
from ssl_robot.data.recordings import LABEL_KEYS, ReadOptions, Recordings, config_value, index_recordings
from ssl_robot.data.samplers import BatchPlan, Window, plan_batches, shard_windows, split_into_windows
from ssl_robot.data.samples import Images, Row, Samples, collate, method_samples, no_samples_reason


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

    def __init__(self, recordings: Recordings, samples: Samples, split: str, *, batch_size: int, slots: int,
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


def make_dataset(method: str, bags: Sequence[str | Path], config: Any, split: str = 'train', *, batch_size: int,
                 seed: int = 0, epochs: int | None = None, shuffle: bool | None = None, drop_last: bool | None = None,
                 labels: bool = False, options: ReadOptions = ReadOptions(), shard: tuple[int, int] = (0, 1),
                 recordings: Recordings | None = None) -> BatchStream:
    """A stream of batch dicts for method from the bags (see the module docstring for their contents).

    config: a DataConfig (cameras, views, image_size, clip_frames, clip_stride, positive_window, episodes_per_batch,
    val_fraction). split: 'train', 'val' (val_fraction of the episodes, the same on every run) or 'all'. epochs: passes
    over the split; None: endless for 'train', one pass otherwise. shuffle and drop_last (leave out a last, smaller
    batch) default to True for 'train' and False otherwise; with shuffle False the windows and their samples come in
    time order. labels: add the evaluation labels. shard: (rank, world size) of a distributed run, so that its processes
    read disjoint windows. recordings: an index made earlier by index_recordings for the same method and labels, to skip
    the index pass.
    """
    if recordings is None:
        recordings = index_recordings(method, bags, config, labels=labels, options=options)
    elif recordings.method != method:
        raise ValueError(f'recordings were indexed for {recordings.method!r}, not {method!r}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    episodes = recordings.split_episodes(split, config.val_fraction)
    samples = method_samples(recordings, config, episodes, labels)
    if not samples.windows(options.window_samples):
        reason = no_samples_reason(recordings, split, episodes, samples, config.val_fraction)
        raise BagError(recordings.bags, f'{method}: zero usable samples: {reason}')
    training = split == 'train'
    return BatchStream(recordings, samples, split, batch_size=batch_size, slots=config.episodes_per_batch,
                       image_size=config_value(config, 'image_size', method), seed=seed,
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
                labels = None if frames.labels is None else dict(zip(LABEL_KEYS, map(bool, frames.labels[t])))
                yield EpisodeFrame(t, int(frames.stamp_ns[t].max()), [images[frames.ref(view, t)] for view in views],
                                   labels)
    finally:
        reader.close()
