"""`ssl-robot demo`: the main job. The sim graph reaches toward a goal it imagined, and the rewards are reported.

It runs launch/demo.launch.xml through `ssl-robot launch` (the same file a real `ros2 launch` runs): the sim in idle
mode, the embedding, reward, Grasp2Vec and goal nodes with the shipped checkpoints, the recorder, and
goal_reacher_node. The reacher asks the goal node for a CC-VAE goal imagined in the current scene, surveys arm
positions over the tray and approaches the one the latent-goal reward likes best (ssl_robot.goal_reaching). The
launch ends when the reacher is done, or after --duration seconds.

Then the recorded bag is read back and reported: every topic the graph published (type, count, rate), whether the
cameras of each tick shared one stamp, each reward stream per waypoint of the reach, and a plot of the rewards over
sim time next to the imagined goal image (rewards.png in --out).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot import topics
from ssl_robot.data.bag_summary import format_summary, summarize_bag
from ssl_robot.reward_evaluation import spearman_rho
from ssl_robot.ros.convert import as_rgb, image_to_array, stamp_to_ns
from ssl_robot.train.report import new_figure, save_figure

NS_PER_S = 1e9
REWARD_PREFIX = topics.reward_topic('')


@dataclass(frozen=True)
class DemoRecording:
    """What the demo needs from its bag."""

    camera_stamps: dict[str, set[int]]
    """Scene camera image topic -> the header stamps of its frames."""
    rewards: dict[str, np.ndarray]
    """Reward kind -> (N, 2) array of (observation stamp in s, reward), in stamp order."""
    reach: list[dict]
    """The /goal_reaching/status events, in order: one per waypoint, then the 'done' event."""
    goal_image: np.ndarray | None
    """The last imagined goal image (H, W, 3), or None if none was recorded."""

    @property
    def reach_end(self) -> dict | None:
        """The reach's 'done' event (every waypoint's score, the failure if any), or None if it did not finish."""
        return next((event for event in self.reach if event.get('phase') == 'done'), None)


def _is_scene_camera(topic: str) -> bool:
    return topic.startswith('/cameras/') and topic.endswith('/image_raw')


def read_recording(bag: Path) -> DemoRecording:
    typestore = get_typestore(Stores.ROS2_KILTED)
    camera_stamps: dict[str, set[int]] = defaultdict(set)
    rewards: dict[str, list[tuple[float, float]]] = defaultdict(list)
    reach: list[dict] = []
    goal_image = None
    with Reader(bag) as reader:
        # Only these connections are read: the rest of the bag (object camera, segmentation, state) goes unused.
        wanted = [c for c in reader.connections if _is_scene_camera(c.topic) or c.topic.startswith(REWARD_PREFIX)
                  or c.topic in (topics.GOAL_REACHING_STATUS, topics.GOAL_IMAGE)]
        for connection, _, raw in reader.messages(connections=wanted):
            topic = connection.topic
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            if _is_scene_camera(topic):
                camera_stamps[topic].add(stamp_to_ns(message.header.stamp))
            elif topic.startswith(REWARD_PREFIX):
                rewards[topic.removeprefix(REWARD_PREFIX)].append(
                    (stamp_to_ns(message.header.stamp) / NS_PER_S, message.vector.x))
            elif topic == topics.GOAL_REACHING_STATUS:
                reach.append(topics.decode_event(message.data, 'goal_reaching'))
            else:
                goal_image = np.array(as_rgb(image_to_array(message), message.encoding))
    return DemoRecording(dict(camera_stamps), {kind: np.array(sorted(values)) for kind, values in rewards.items()},
                         reach, goal_image)


def camera_stamp_agreement(camera_stamps: dict[str, set[int]]) -> tuple[int, int]:
    """(ticks where every scene camera image shares the stamp, ticks seen)."""
    if not camera_stamps:
        return 0, 0
    return len(set.intersection(*camera_stamps.values())), len(set.union(*camera_stamps.values()))


@dataclass(frozen=True)
class WaypointRewards:
    phase: str
    index: int
    position: tuple[float, ...]
    start_s: float
    end_s: float
    rewards: dict[str, np.ndarray]
    """Reward kind -> the rewards of observations stamped within [start_s, end_s)."""
    score: float | None
    """The reacher's score of the waypoint: its reward over the settled end of the hold only (None if unscored or the
    reach did not finish)."""


def waypoint_rewards(recording: DemoRecording) -> list[WaypointRewards]:
    """The reward streams cut at the reach's waypoints: each waypoint lasts until the next status event."""
    events = [e for e in recording.reach if 'phase' in e]
    done = recording.reach_end or {}
    scores = [step['score'] for step in done.get('survey', []) + done.get('approach', [])]
    spans = []
    for event, following in zip(events, events[1:]):
        if event['phase'] == 'done':
            break
        start_s = topics.stamp_from_dict(event['stamp']) / NS_PER_S
        end_s = topics.stamp_from_dict(following['stamp']) / NS_PER_S
        rewards = {kind: stream[(stream[:, 0] >= start_s) & (stream[:, 0] < end_s), 1]
                   for kind, stream in recording.rewards.items()}
        score = scores[len(spans)] if len(spans) < len(scores) else None
        spans.append(WaypointRewards(event['phase'], event['index'], tuple(event['position']), start_s, end_s,
                                     rewards, score))
    return spans


def format_reward_streams(recording: DemoRecording, waypoints: list[WaypointRewards]) -> str:
    kinds = sorted(recording.rewards)
    if not kinds:
        return 'reward streams: none recorded'
    lines = ['reward streams: ' + ', '.join(f'{topics.reward_topic(k)} {len(recording.rewards[k])} messages'
                                            for k in kinds)]
    header = f'{"waypoint":<12} {"position (m)":<22} {"sim s":>12}' + ''.join(
        f' {k + " mean":>17} {"n":>4}' for k in kinds) + f' {"reacher score":>14}'
    lines.append(header)
    for waypoint in waypoints:
        position = '(' + ', '.join(f'{v:.2f}' for v in waypoint.position) + ')'
        cells = ''.join(
            f' {np.mean(values):>+17.4f} {len(values):>4}' if len(values) else f' {"-":>17} {0:>4}'
            for values in (waypoint.rewards[k] for k in kinds))
        score = f'{waypoint.score:>+14.4f}' if waypoint.score is not None else f'{"-":>14}'
        lines.append(f'{waypoint.phase + " " + str(waypoint.index):<12} {position:<22} '
                     f'{waypoint.start_s:>5.1f}-{waypoint.end_s:<6.1f}' + cells + ' ' + score)
    lines.append('mean: over every frame of the waypoint, moving included; reacher score: over its settled end, '
                 'which the reach compares')
    return '\n'.join(lines)


def approach_summary(recording: DemoRecording, kind: str = 'latent_goal') -> str:
    """One line on how the reward changed along the approach (or why there was none)."""
    done = recording.reach_end
    if done is None:
        return 'goal reaching: did not finish within the duration'
    if done.get('failure'):
        return f'goal reaching failed: {done["failure"]}'
    scores = [step['score'] for step in done['approach']]
    known = [(k, s) for k, s in enumerate(scores) if s is not None]
    try:
        rho = spearman_rho([k for k, _ in known], [score for _, score in known])
    except ValueError:  # too few scored waypoints, or a flat reward: no ranking to report
        rho = float('nan')
    return (f'goal reaching: the {kind} reward went from {scores[0]:+.4f} at the approach start to {scores[-1]:+.4f} '
            f'at the chosen position; Spearman rank correlation with progress along the approach {rho:+.2f}')


def plot_rewards(recording: DemoRecording, waypoints: list[WaypointRewards], path: Path) -> Path:
    """Rewards over sim time from the reach's start, survey and approach shaded, next to the imagined goal image; PNG
    written atomically."""
    figure = new_figure(11, 4)
    goal_axes, reward_axes = figure.subplots(1, 2, width_ratios=[1, 3])
    if recording.goal_image is not None:
        goal_axes.imshow(recording.goal_image)
    goal_axes.set_title('imagined goal (CC-VAE)')
    goal_axes.axis('off')
    colours = {'survey': '0.9', 'approach': '#d8f0d8'}
    for waypoint in waypoints:
        reward_axes.axvspan(waypoint.start_s, waypoint.end_s, color=colours.get(waypoint.phase, 'white'),
                            alpha=0.6 if waypoint.index % 2 else 1.0, linewidth=0)
    # Rewards before the reach scored the goal drawn at the episode start, not the one reached for.
    start_s = waypoints[0].start_s if waypoints else -np.inf
    for kind, stream in sorted(recording.rewards.items()):
        shown = stream[stream[:, 0] >= start_s]
        reward_axes.plot(shown[:, 0], shown[:, 1], '.-', markersize=3, linewidth=0.8, label=topics.reward_topic(kind))
    reward_axes.set_xlabel('observation stamp (sim s); grey: survey waypoints, green: approach')
    reward_axes.set_ylabel('reward')
    reward_axes.grid(alpha=0.3)
    if recording.rewards:
        reward_axes.legend(loc='lower right', fontsize='small')
    reward_axes.set_title('rewards while reaching toward the imagined goal')
    return save_figure(figure, path)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--duration', type=float, default=300.0,
                        help='longest time to run the graph, in seconds (default 300); it stops when the reach is done')
    parser.add_argument('--seed', type=int, default=0, help='seed of the sim episode (default 0)')
    parser.add_argument('--out', type=Path, default=None,
                        help='directory for the recorded bag and rewards.png (default: a new temporary directory)')


def run_demo(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise ValueError(f'--duration must be > 0, got {args.duration}')
    out = args.out or Path(tempfile.mkdtemp(prefix='ssl_robot_demo_'))
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'bag'
    if bag.exists():
        raise FileExistsError(f'{bag} exists: give a new --out directory')
    command = [sys.executable, '-m', 'ssl_robot.cli', 'launch', 'demo', f'bag:={bag}', f'seed:={args.seed}',
               '--duration', str(args.duration)]
    print('$ ' + ' '.join(command[2:]), flush=True)
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise ChildProcessError(f'the sim graph exited with status {status}')
    recording = read_recording(bag)
    waypoints = waypoint_rewards(recording)
    print(f'\nrecorded {bag}:\n{format_summary(summarize_bag(bag))}')
    shared, seen = camera_stamp_agreement(recording.camera_stamps)
    print(f'\ncamera sets with one identical stamp across all scene cameras: {shared} of {seen} ticks recorded')
    print('\n' + format_reward_streams(recording, waypoints))
    summary = approach_summary(recording)
    print('\n' + summary)
    print(f'reward plot: {plot_rewards(recording, waypoints, out / "rewards.png")}')
    finished = recording.reach_end
    return 0 if finished is not None and not finished.get('failure') else 1
