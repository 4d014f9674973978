"""Per-method samples of one split: what a training row shows and which recorded images it needs, drawn window by
window (runs of samples of one episode, or of one bag's grasps, the unit of reading); collate() stacks rows into a
batch. See data.datasets for the batches each method gets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from ssl_robot.data.reader import ImageRef
from ssl_robot.data.recordings import LABEL_KEYS, Recordings, config_value, reads_grasps
from ssl_robot.data.samplers import EpisodeFrames, GraspTriplet, Window, split_into_windows, stratified_order
from ssl_robot.images import rgb_to_tensor
from ssl_robot.models.registry import method_spec

IMAGE_KEYS = frozenset({'frames', 'clips', 'state', 'context', 'pre', 'post', 'object'})

Row = dict[str, Any]
Images = dict[ImageRef, np.ndarray]


class Samples(ABC):
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


class FrameSamples(Samples):
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


class ClipSamples(FrameSamples):
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


class PairSamples(FrameSamples):
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


class StateSamples(FrameSamples):
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


class GraspSamples(Samples):
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


def method_samples(recordings: Recordings, config: Any, episodes: set[int], labels: bool) -> Samples:
    """The samples of the recordings' method in the given episodes (config: a DataConfig)."""
    method = recordings.method
    if reads_grasps(method):
        return GraspSamples([[g for g in triplets if g.episode in episodes] for triplets in recordings.grasps],
                             labels)
    frames = [f for f in recordings.frames if f.episode.id in episodes]
    if method == 'tcn':
        return ClipSamples(frames, labels, None, 1)
    if method == 'mftcn':
        return ClipSamples(frames, labels, config_value(config, 'clip_frames', method),
                            config_value(config, 'clip_stride', method))
    if method == 'svtcn':
        return PairSamples(frames, labels, config_value(config, 'positive_window', method))
    return StateSamples(frames, labels, context=method_spec(method).needs_context)


def no_samples_reason(recordings: Recordings, split: str, episodes: set[int], samples: Samples,
                       val_fraction: float) -> str:
    """Why a split has no samples, for the BagError make_dataset raises then."""
    if not episodes:
        return (f'split {split!r} holds none of the {len(recordings.episodes)} episode(s) '
                f'(val_fraction {val_fraction})')
    if reads_grasps(recordings.method):
        reasons = ', '.join(f'{n} {reason}' for reason, n in recordings.skipped.most_common()) or 'none recorded'
        return f'no usable grasps in split {split!r} (grasps left out: {reasons})'
    if not recordings.frames:
        drops = ', '.join(f'{n} {reason}' for reason, n in recordings.sync_drops.most_common()) or 'no images'
        return (f'no synchronized frames of {", ".join(recordings.cameras)} (synchronizer drops: {drops}); '
                f'a robot\'s cameras may need a larger ReadOptions.sync_max_interval_ns')
    if isinstance(samples, FrameSamples) and samples.first_time:
        longest = max((len(f) for f in samples.frames), default=0)
        return (f'no episode of split {split!r} has the {samples.first_time + 1} frames a clip spans '
                f'(the longest has {longest})')
    return f'split {split!r} has no frames'
