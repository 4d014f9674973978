"""The index of a set of bags for one training method: which cameras it reads, its episodes and their synchronized
frames (or its grasps), made by one streaming pass per bag (data.bag_index) that keeps stamps and events only.

    recordings = index_recordings('tcn', ['bags/motion'], train_config.data)

data.samples turns the index into per-method samples, data.datasets streams them as batches.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_robot import topics
from ssl_robot.data.bag_index import BagIndex, index_bag
from ssl_robot.data.reader import IMAGE_TYPE, BagError, bag_topics, find_bags, require_topics
from ssl_robot.data.samplers import (Episode, EpisodeFrames, GraspTriplet, bag_episodes, frames_by_episode,
                                     grasp_triplets, held_out, synchronize)
from ssl_robot.models.registry import GRASP2VEC_FAMILY, method_spec

SPLITS = ('train', 'val', 'all')
OBJECT_CAMERA_TOPIC = topics.camera_image(topics.OBJECT_CAMERA)
SCENE_CAMERA_PATTERN = re.compile(r'^/cameras/[^/]+/image_raw$')
LABEL_KEYS = ('gripper_closed', 'object_lifted', 'gripper_contact')


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


def reads_grasps(method: str) -> bool:
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
    if reads_grasps(method):
        scene = list(cameras[:1])
        return [*scene, object_camera, topics.GRASP_EVENTS, *(segmentation_topic(c) for c in scene if labels)]
    return [*cameras, *([topics.GROUND_TRUTH] if labels else [])]


def config_value(config: Any, name: str, method: str) -> int:
    """config.name (a DataConfig field the model fills), a ValueError saying how to set it if it is null."""
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
    if reads_grasps(method):
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
    if reads_grasps(method):
        image_topics += [options.object_camera, *([segmentation_topic(cameras[0])] if labels else [])]
    for path, topics_of_bag in zip(paths, available):
        require_topics(path, topics_of_bag, required_topics(method, cameras, labels=labels,
                                                            object_camera=options.object_camera), method)
        require_topics(path, topics_of_bag, image_topics, method, IMAGE_TYPE)
    recordings = Recordings(method, paths, cameras, [])
    for bag, path in enumerate(paths):
        index = index_bag(path, image_topics, ground_truth=labels and not reads_grasps(method))
        episodes = bag_episodes(index, bag, len(recordings.episodes))
        recordings.episodes += episodes
        if reads_grasps(method):
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
