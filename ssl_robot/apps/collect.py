"""`ssl-robot collect`: run the sim headless in a collection mode and record N episodes to a bag.

The sim runs in this process and its messages go straight into the bag through the same tick_messages()
the live sim node publishes, serialized once: no DDS hop, so nothing is dropped however fast the sim
runs, and the bag is exactly what a recorder would have received from the graph.

- grasp mode (Grasp2Vec): every tick's state and events are recorded; camera images on every
  `--record-every`-th tick plus every tick a grasp event refers to (s_pre, o, s_post). `--record-every 0`
  records only those keyframes: all Grasp2Vec trains on, at about 4x the episodes per minute.
- motion mode (TCN, mfTCN): scripted reach/push/grasp-lift-place episodes; images every
  `--record-every`-th tick from all scene cameras at once.

With `--camera-position-m`, `--camera-aim-deg` or `--camera-fov-deg` (or sim/scene.yaml's camera_randomization)
every episode's scene camera poses are drawn anew within those bounds, from the episode's seed, and recorded in its
/sim/episode event (read back as ssl_robot.data.samplers.Episode.camera_poses).

With `--max-minutes M` collection stops at an episode boundary before the episodes asked for once another
episode, at the slowest pace seen so far, would not end within M minutes of wall time, so a collection
budget ("data made in at most 10 minutes") holds on a slow or busy machine too; the bag then holds fewer
episodes, all complete, and the summary says why it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rclpy.serialization import serialize_message

from ssl_robot import topics
from ssl_robot.data.bag_writer import BagWriter
from ssl_robot.ros.sim_messages import ros_type_name, sim_topic_specs, tick_messages
from ssl_robot.sim.config import CameraRandomization, load_sim_config
from ssl_robot.sim.runner import GraspEvent, SimRunner

MODES = ('grasp', 'motion')
# Each flush closes an MCAP file (that is what keeps a killed recording readable), so collection, which
# writes far faster than a live recorder, flushes less often: fewer files, at most ~30 s of work lost.
COLLECT_FLUSH_MESSAGES = 20_000
COLLECT_FLUSH_PERIOD_S = 30.0


@dataclass
class CollectReport:
    episodes: int
    ticks: int
    messages: int
    grasp_attempts: int
    grasp_successes: int
    wall_s: float
    tick_period_s: float
    out_of_time: bool = False
    """Stopped before the episodes asked for: the next one would not have ended within max_minutes."""

    @property
    def sim_s(self) -> float:
        return self.ticks * self.tick_period_s

    def summary(self) -> str:
        per_min = self.episodes / self.wall_s * 60 if self.wall_s > 0 else float('nan')
        text = (f'{self.episodes} episodes, {self.ticks} ticks ({self.sim_s:.1f} s sim) in {self.wall_s:.1f} s wall: '
                f'{per_min:.1f} episodes/min, {self.messages} messages')
        if self.grasp_attempts:
            text += (f'; grasps {self.grasp_successes}/{self.grasp_attempts} '
                     f'({100 * self.grasp_successes / self.grasp_attempts:.0f} % success)')
        if self.out_of_time:
            text += '; stopped early: another episode would not have ended within the time budget'
        return text


def collect(mode: str, episodes: int, output: Path, *, seed: int = 0, storage: str = 'mcap',
            record_every: int = 3, segmentation: bool = True, rig: str = 'default', object_set: str | None = None,
            num_objects: int | None = None, image_size: tuple[int, int] | None = None,
            attempts_per_episode: int = 5, max_minutes: float | None = None,
            camera_randomization: CameraRandomization | None = None, progress=print,
            clock: Callable[[], float] = time.monotonic) -> CollectReport:
    """Record `episodes` episodes of `mode` to a new bag at output (see the module docstring); with max_minutes,
    fewer when the wall-time budget would not hold another (clock: seconds, monotonic). camera_randomization
    replaces the scene's bounds of the per-episode camera poses (None: sim/scene.yaml's)."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    if record_every < (1 if mode == 'motion' else 0):
        raise ValueError(f'record_every must be >= 1 in motion mode (>= 0 in grasp mode: 0 records only grasp '
                         f'keyframes), got {record_every}')
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f'max_minutes must be > 0, got {max_minutes}')
    overrides = {} if camera_randomization is None else {'camera_randomization': camera_randomization}
    config = load_sim_config(rig=rig, object_set=object_set, num_objects=num_objects, image_size=image_size,
                             **overrides)
    specs = sim_topic_specs([camera.name for camera in config.cameras], segmentation=segmentation)
    del specs[topics.CLOCK]  # the bag's own timestamps are the sim time
    report = CollectReport(0, 0, 0, 0, 0, 0.0, 1.0 / config.tick_rate_hz)
    start = episode_start = clock()
    slowest_episode_s = 0.0
    with SimRunner(config, mode=mode, seed=seed, attempts_per_episode=attempts_per_episode) as runner, \
            BagWriter(output, storage=storage, flush_every_messages=COLLECT_FLUSH_MESSAGES,
                      flush_period_s=COLLECT_FLUSH_PERIOD_S) as bag:
        for topic, spec in specs.items():
            bag.add_topic(topic, ros_type_name(spec.type))
        while runner.episodes_completed < episodes and not report.out_of_time:
            # Unrecorded ticks are not rendered at all; the runner still renders keyframe ticks.
            tick = runner.tick(render=record_every > 0 and report.ticks % record_every == 0)
            for topic, message in tick_messages(tick, segmentation=segmentation):
                if topic == topics.CLOCK:
                    continue
                bag.write(topic, tick.stamp_ns, serialize_message(message))
                report.messages += 1
            for event in tick.events:
                if isinstance(event, GraspEvent):
                    report.grasp_attempts += 1
                    report.grasp_successes += int(event.success)
            report.ticks += 1
            if runner.episodes_completed > report.episodes:
                now = clock()
                slowest_episode_s = max(slowest_episode_s, now - episode_start)
                episode_start = now
                report.episodes = runner.episodes_completed
                report.wall_s = now - start
                # The next episode starts on the next tick; it is not begun unless it can end in time.
                report.out_of_time = (max_minutes is not None and report.episodes < episodes
                                      and report.wall_s + slowest_episode_s > 60 * max_minutes)
                progress(f'episode {report.episodes}/{episodes}: {report.summary()}')
    report.wall_s = clock() - start
    return report


def add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--mode', choices=(*MODES, 'explore'), required=True,
                        help='grasp (Grasp2Vec), motion (TCN/mfTCN) or explore (random actions in an RL task, '
                             'task camera only: the images a task VAE is trained on)')
    parser.add_argument('--episodes', type=int, required=True, help='episodes to record')
    parser.add_argument('-o', '--out', type=Path, required=True, help='bag directory to create (must not exist)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode (default 0)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap', help='bag storage (default mcap)')
    parser.add_argument('--record-every', type=int, default=3,
                        help='record camera images every N ticks (default 3: 10 Hz at the 30 Hz tick); grasp mode '
                             'also records grasp keyframes, and 0 records only those')
    parser.add_argument('--no-segmentation', action='store_true', help='do not record object masks')
    parser.add_argument('--rig', default=None,
                        help='camera rig in sim/rigs/, or a rig file (default: default; explore mode: the task\'s '
                             'own task camera rig)')
    parser.add_argument('--object-set', default=None, help='object set in sim/objects/ (default: the scene\'s)')
    parser.add_argument('--num-objects', type=int, default=None, help='objects per tray (default: the scene\'s)')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('W', 'H'), default=None,
                        help='camera resolution (default: the rig\'s)')
    parser.add_argument('--camera-position-m', type=float, default=None, metavar='M',
                        help='move every scene camera by up to M metres, drawn anew each episode (default: '
                             'sim/scene.yaml camera_randomization); the poses are recorded in /sim/episode')
    parser.add_argument('--camera-aim-deg', type=float, default=None, metavar='DEG',
                        help='turn every scene camera by up to DEG degrees each episode (default: the scene\'s)')
    parser.add_argument('--camera-fov-deg', type=float, default=None, metavar='DEG',
                        help='change every scene camera\'s vertical field of view by up to +-DEG degrees each '
                             'episode (default: the scene\'s)')
    parser.add_argument('--attempts-per-episode', type=int, default=5, help='grasp mode: attempts per tray reset')
    parser.add_argument('--task', choices=('reach', 'push'), default='reach', help='explore mode: the RL task')
    parser.add_argument('--episode-steps', type=int, default=50, help='explore mode: steps per episode')
    parser.add_argument('--max-minutes', type=float, default=None,
                        help='wall-time budget: stop early, after a complete episode, when another would not end '
                             'within it at the slowest pace so far (default: none)')


def run_collect(args: argparse.Namespace) -> int:
    if args.mode == 'explore':
        from ssl_robot.apps.explore import record_exploration
        size = args.image_size[0] if args.image_size else 48
        if args.image_size and args.image_size[0] != args.image_size[1]:
            raise ValueError(f'explore mode renders square images, got --image-size {args.image_size}')
        report = record_exploration(args.task, args.episodes, args.out, seed=args.seed, image_size=size,
                                    episode_steps=args.episode_steps, rig=args.rig or '', storage=args.storage,
                                    max_minutes=args.max_minutes)
        print(f'wrote {args.out}: {report.summary()}')
        return 0
    report = collect(args.mode, args.episodes, args.out, seed=args.seed, storage=args.storage,
                     record_every=args.record_every, segmentation=not args.no_segmentation, rig=args.rig or 'default',
                     object_set=args.object_set, num_objects=args.num_objects,
                     image_size=tuple(args.image_size) if args.image_size else None,
                     attempts_per_episode=args.attempts_per_episode, max_minutes=args.max_minutes,
                     camera_randomization=_camera_randomization(args))
    print(f'wrote {args.out}: {report.summary()}')
    return 0


def _camera_randomization(args: argparse.Namespace) -> CameraRandomization | None:
    """The scene's camera randomization with the bounds the command line gives replacing its own; None if none."""
    given = {name: value for name, value in (('position_m', args.camera_position_m), ('aim_deg', args.camera_aim_deg),
                                             ('fov_deg', args.camera_fov_deg)) if value is not None}
    if not given:
        return None
    return dataclasses.replace(load_sim_config().camera_randomization, **given)
