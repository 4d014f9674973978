"""Small synthetic bags for the data pipeline tests (no tests here).

Every image is one flat colour that says where it came from: red = camera code (10 * (camera index + 1),
OBJECT_CODE for the object camera), green + 256 * blue = the sim tick. Flat images survive area resizing
unchanged, so a test can tell exactly which recorded image ended up in which batch row. Ground-truth
flags and segmentation are fixed functions of the tick, so labels can be checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from rosbags.typesys import Stores, get_typestore

from ssl_robot import topics
from ssl_robot.data.bag_writer import BagWriter

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
Image = TYPESTORE.types['sensor_msgs/msg/Image']
Header = TYPESTORE.types['std_msgs/msg/Header']
Time = TYPESTORE.types['builtin_interfaces/msg/Time']
String = TYPESTORE.types['std_msgs/msg/String']
OBJECT_CODE = 250


@dataclass(frozen=True)
class Grasp:
    pre: int
    """Tick of s_pre."""
    post: int
    """Tick of s_post."""
    shown: int | None
    """Tick of o (None for a failed grasp)."""
    object_index: int | None = 0
    """None: the event names no object."""

    @property
    def success(self) -> bool:
        return self.shown is not None


@dataclass(frozen=True)
class BagSpec:
    cameras: tuple[str, ...] = ('left', 'right')
    episode_ticks: tuple[int, ...] = (40, 30, 50)
    """Ticks of each episode; ticks count on across episodes, as sim time does."""
    record_every: int = 2
    """Images on every record_every-th tick, plus the ticks grasps refer to."""
    tick_ns: int = 10_000_000
    start_ns: int = 1_000_000_000
    camera_offsets_ns: tuple[int, ...] = ()
    """Per camera, added to its header stamps: a robot's cameras are not exactly synchronized."""
    latency_ns: int = 0
    """Bag (receive) time minus header stamp."""
    episode_events: bool = True
    grasps: tuple[Grasp, ...] = ()
    ground_truth: bool = False
    segmentation: bool = False
    width: int = 12
    height: int = 10
    row_padding: int = 4
    """Bytes after each image row (step > width * 3)."""
    extra_topics: dict[str, str] = field(default_factory=dict)
    rig: str = ''
    """The camera rig the episode events name (with a pose per camera); '' for events that name none."""

    def stamp(self, tick: int, camera: int = 0) -> int:
        offsets = self.camera_offsets_ns or (0,) * len(self.cameras)
        return self.start_ns + tick * self.tick_ns + offsets[camera]

    @property
    def episode_starts(self) -> list[int]:
        return [int(v) for v in np.cumsum([0, *self.episode_ticks[:-1]])]

    @property
    def image_ticks(self) -> list[int]:
        keyframes = {t for g in self.grasps for t in (g.pre, g.post, g.shown) if t is not None}
        return sorted({t for t in range(sum(self.episode_ticks)) if t % self.record_every == 0} | keyframes)

    def episode_frame_ticks(self) -> list[list[int]]:
        """The ticks of each episode's frames, in time order: frame time t of episode e is [e][t]."""
        bounds = [*self.episode_starts, sum(self.episode_ticks)]
        return [[t for t in self.image_ticks if a <= t < b] for a, b in zip(bounds[:-1], bounds[1:])]


def gripper_closed(tick: int) -> bool:
    return tick % 5 < 2


def object_lifted(tick: int) -> bool:
    return tick % 3 == 0


def gripper_contact(tick: int) -> bool:
    return tick % 4 == 1


def segmentation_labels(height: int, width: int) -> np.ndarray:
    """Object 0 (label 1) fills the left half, object 1 (label 2) the right half, the top row is background."""
    labels = np.ones((height, width), np.uint16)
    labels[:, width // 2:] = 2
    labels[0] = 0
    return labels


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, padding: int = 0,
                  big_endian: bool = False) -> object:
    height, width = pixels.shape[:2]
    rows = pixels.astype(pixels.dtype.newbyteorder('>' if big_endian else '<')).reshape(height, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((height, padding), 77, np.uint8)], axis=1)
    return Image(header=Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id='camera'),
                 height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                 step=padded.shape[1], data=padded.reshape(-1))


def coded_pixels(code: int, tick: int, spec: BagSpec) -> np.ndarray:
    return np.broadcast_to(np.array([code, tick % 256, tick // 256], np.uint8), (spec.height, spec.width, 3)).copy()


def decode_code(image: torch.Tensor) -> tuple[int, int]:
    """(camera code, tick) of a (3, H, W) float image made from coded_pixels."""
    red, green, blue = (int(round(float(image[c].mean()) * 255)) for c in range(3))
    return red, green + 256 * blue


def write_bag(path: Path, spec: BagSpec = BagSpec(), storage: str = 'mcap') -> Path:
    """A bag as `ssl-robot collect` writes one, filled per spec; flushed often so that MCAP bags are split."""
    messages: list[tuple[int, str, str, object]] = []  # (bag time, topic, type, message)

    def add(topic: str, msgtype: str, stamp_ns: int, message: object) -> None:
        messages.append((stamp_ns + spec.latency_ns, topic, msgtype, message))

    for tick in spec.image_ticks:
        for index, camera in enumerate(spec.cameras):
            stamp = spec.stamp(tick, index)
            add(topics.camera_image(camera), 'sensor_msgs/msg/Image', stamp,
                image_message(coded_pixels(10 * (index + 1), tick, spec), 'rgb8', stamp, spec.row_padding))
            if spec.segmentation:
                add(topics.camera_segmentation(camera), 'sensor_msgs/msg/Image', stamp,
                    image_message(segmentation_labels(spec.height, spec.width), '16UC1', stamp))
    for grasp in spec.grasps:
        if grasp.shown is not None:
            stamp = spec.stamp(grasp.shown)
            add(topics.camera_image(topics.OBJECT_CAMERA), 'sensor_msgs/msg/Image', stamp,
                image_message(coded_pixels(OBJECT_CODE, grasp.shown, spec), 'rgb8', stamp))
        event = SimpleNamespace(attempt=0, success=grasp.success, reason='', object_index=grasp.object_index,
                                object_name=None if grasp.object_index is None else f'object{grasp.object_index}',
                                target_xy=(0.0, 0.0),
                                s_pre_ns=spec.stamp(grasp.pre), s_post_ns=spec.stamp(grasp.post),
                                o_ns=None if grasp.shown is None else spec.stamp(grasp.shown))
        add(topics.GRASP_EVENTS, 'std_msgs/msg/String', spec.stamp(grasp.post),
            String(data=topics.encode_grasp_event(event)))
    if spec.episode_events:
        for number, start in enumerate(spec.episode_starts):
            poses = {camera: {'eye': [1.0, float(index), 0.5], 'target': [0.6, 0.0, 0.0], 'up': [0.0, 0.0, 1.0],
                              'fov_deg': 36.0} for index, camera in enumerate(spec.cameras)} if spec.rig else {}
            event = SimpleNamespace(stamp_ns=spec.stamp(start), episode=number, seed=100 + number, mode='motion',
                                    behaviour='reach', rig=spec.rig, cameras=poses)
            add(topics.EPISODES, 'std_msgs/msg/String', spec.stamp(start),
                String(data=topics.encode_episode_event(event)))
    if spec.ground_truth:
        for tick in range(sum(spec.episode_ticks)):
            text = topics.encode_event(
                'ground_truth', spec.stamp(tick),
                gripper={'opening_m': 0.0, 'closed': gripper_closed(tick), 'held_object': None},
                objects=[{'index': 0, 'name': 'object0', 'position': [0, 0, 0], 'lifted': object_lifted(tick),
                          'in_tray': True, 'touching_gripper': gripper_contact(tick)},
                         {'index': 1, 'name': 'object1', 'position': [0, 0, 0], 'lifted': False, 'in_tray': True,
                          'touching_gripper': False}],
                contacts=[])
            add(topics.GROUND_TRUTH, 'std_msgs/msg/String', spec.stamp(tick), String(data=text))
    with BagWriter(path, storage=storage, flush_every_messages=150, flush_period_s=0) as bag:
        for topic, msgtype in {**{m[1]: m[2] for m in messages}, **spec.extra_topics}.items():
            bag.add_topic(topic, msgtype)
        for log_ns, topic, msgtype, message in sorted(messages, key=lambda m: m[0]):
            bag.write(topic, log_ns, TYPESTORE.serialize_cdr(message, msgtype))
    return path
