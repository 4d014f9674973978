"""`ssl-robot main-job`: the main job. The sim robot reaches, with the shipped RL policy, for goals it imagined.

It runs launch/main_job.launch.xml through `ssl-robot launch` (the same file a real `ros2 launch` runs): the sim in idle
mode on the main_job rig with an empty tray, the embedding, reward, Grasp2Vec and goal nodes, the recorder, policy_node
(the shipped reach policy, ssl_robot/checkpoints/rl_reach_policy.safetensors) and goal_sequence_node, which asks the
goal node for five imagined goals one after another and ends the launch when the policy is done with the last one.
The goal node and the latent-goal reward run the task camera's beta-VAE, the model the policy was trained on.

Then the recorded bag is read back and reported, one row per goal: the goal, the policy's steps, the latent-goal
reward (/reward/latent_goal) at the start and the end of the reach, the true final distance to the goal state and
success (within 5 cm). The goal state of an imagined goal is its nearest achievable state: the hand position whose
latent is nearest the goal latent (ssl_robot.rl.reachable); of a scene goal, the arm position it was posed at. The
hand's final position is the ground truth of /sim/ground_truth. A plot (main_job.png in --out) shows the reward over sim
time with the goal changes marked, each goal image and the task camera's last frame of each reach.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot import topics
from ssl_robot.data.bag_summary import format_summary, summarize_bag
from ssl_robot.ros.convert import as_rgb, image_to_array, stamp_to_ns
from ssl_robot.train.report import new_figure, save_figure

NS_PER_S = 1e9
SUCCESS_DISTANCE_M = 0.05
TASK_CAMERA = topics.camera_image('task')
REWARD_TOPIC = topics.reward_topic('latent_goal')
# Rewards of frames within this of the goal's stamp may still be scored against the previous goal (the reward node
# gets the goal over DDS after the frame it was imagined in): the start reward is the first one after it.
GOAL_ARRIVAL_S = 0.2
# Seconds each node gets to stop after the last goal: on 2 loaded cores a node with torch and stable-baselines3 loaded
# took 4 s to exit, close to the launch runner's default 5.
SHUTDOWN_GRACE_S = 30.0


@dataclass(frozen=True)
class Stamped:
    stamps_ns: list[int]
    values: list
    """One per stamp, in stamp order."""

    def at_or_before(self, stamp_ns: int):
        """The value of the latest stamp <= stamp_ns, or None."""
        index = bisect_right(self.stamps_ns, stamp_ns)
        return self.values[index - 1] if index else None

    def first_at_or_after(self, stamp_ns: int):
        index = bisect_right(self.stamps_ns, stamp_ns - 1)
        return self.values[index] if index < len(self.values) else None


def _stamped(pairs: list[tuple[int, object]]) -> Stamped:
    pairs.sort(key=lambda pair: pair[0])
    return Stamped([stamp for stamp, _ in pairs], [value for _, value in pairs])


@dataclass(frozen=True)
class MainJobRecording:
    """What the main job's report needs from its bag."""

    goals: list[dict]
    """The /goal_sequence/events, one per goal, in order."""
    rewards: Stamped
    """/reward/latent_goal: reward per observation stamp."""
    goal_latents: dict[int, np.ndarray]
    """/goal/latent by stamp."""
    goal_images: dict[int, np.ndarray]
    """/goal/image by stamp."""
    hand: Stamped
    """/sim/ground_truth: the TCP position (x, y, z) per tick."""
    task_frames: Stamped
    """/cameras/task/image_raw frames."""


def read_recording(bag: Path) -> MainJobRecording:
    typestore = get_typestore(Stores.ROS2_KILTED)
    columns: dict[str, list] = defaultdict(list)
    wanted_topics = {topics.GOAL_SEQUENCE_EVENTS, REWARD_TOPIC, topics.GOAL_LATENT, topics.GOAL_IMAGE,
                     topics.GROUND_TRUTH, TASK_CAMERA}
    with Reader(bag) as reader:
        wanted = [c for c in reader.connections if c.topic in wanted_topics]
        for connection, _, raw in reader.messages(connections=wanted):
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            topic = connection.topic
            if topic in (topics.GOAL_SEQUENCE_EVENTS, topics.GROUND_TRUTH):
                event = topics.decode_event(message.data, 'goal_sequence' if topic == topics.GOAL_SEQUENCE_EVENTS
                                            else 'ground_truth')
                stamp_ns = topics.stamp_from_dict(event['stamp'])
                value = event if topic == topics.GOAL_SEQUENCE_EVENTS else np.array(event['gripper']['tcp_position'])
                columns[topic].append((stamp_ns, value))
                continue
            stamp_ns = stamp_to_ns(message.header.stamp)
            if topic == REWARD_TOPIC:
                columns[topic].append((stamp_ns, float(message.vector.x)))
            elif topic == topics.GOAL_LATENT:
                columns[topic].append((stamp_ns, np.array(image_to_array(message))[0]))
            else:
                columns[topic].append((stamp_ns, np.array(as_rgb(image_to_array(message), message.encoding))))
    return MainJobRecording(goals=[event for _, event in sorted(columns[topics.GOAL_SEQUENCE_EVENTS],
                                                             key=lambda pair: pair[1]['index'])],
                         rewards=_stamped(columns[REWARD_TOPIC]), goal_latents=dict(columns[topics.GOAL_LATENT]),
                         goal_images=dict(columns[topics.GOAL_IMAGE]), hand=_stamped(columns[topics.GROUND_TRUTH]),
                         task_frames=_stamped(columns[TASK_CAMERA]))


@dataclass(frozen=True)
class GoalRow:
    index: int
    goal_id: int | None
    """The policy's id of the goal; None if the policy never took it."""
    source: str
    """'imagined' or 'scene'."""
    steps: int
    done: bool
    """The policy finished its steps; False: the reach was given up (goal_sequence_node's reach_timeout_s)."""
    start_s: float
    end_s: float
    reward_start: float | None
    reward_end: float | None
    goal_xy: tuple[float, float] | None
    """The goal state's hand position: the nearest achievable one (imagined) or the posed one (scene)."""
    final_xy: tuple[float, float] | None
    """The hand's true position at the end of the reach."""

    @property
    def distance_m(self) -> float | None:
        if self.goal_xy is None or self.final_xy is None:
            return None
        return float(np.hypot(*np.subtract(self.final_xy, self.goal_xy)))

    @property
    def success(self) -> bool:
        return self.distance_m is not None and self.distance_m < SUCCESS_DISTANCE_M


def goal_rows(recording: MainJobRecording, nearest_position) -> list[GoalRow]:
    """A row per goal. nearest_position(goal_latent) -> (x, y): the nearest achievable state of an imagined goal."""
    rows = []
    for event in recording.goals:
        goal_ns = topics.stamp_from_dict(event['goal_stamp'])
        end_ns = topics.stamp_from_dict(event['stamp'])
        if event['source'] == 'scene':
            goal_xy = tuple(event['goal_position'][:2])
        else:
            latent = recording.goal_latents.get(goal_ns)
            goal_xy = None if latent is None else tuple(float(v) for v in nearest_position(latent))
        final = recording.hand.at_or_before(end_ns)
        rows.append(GoalRow(
            index=event['index'], goal_id=event['goal_id'], source=event['source'], steps=event['steps'],
            done=event['done'], start_s=goal_ns / NS_PER_S, end_s=end_ns / NS_PER_S,
            reward_start=recording.rewards.first_at_or_after(goal_ns + int(GOAL_ARRIVAL_S * NS_PER_S)),
            reward_end=recording.rewards.at_or_before(end_ns), goal_xy=goal_xy,
            final_xy=None if final is None else (float(final[0]), float(final[1]))))
    return rows


def _cell(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else '-'


def format_goal_table(rows: list[GoalRow]) -> str:
    lines = [f'{"goal":>4} {"id":>3} {"source":<8} {"steps":>5} {"done":>4} {"reward start":>12} {"reward end":>10} '
             f'{"goal state (m)":>16} {"final hand (m)":>16} {"distance (m)":>12} success']
    for row in rows:
        goal = '-' if row.goal_xy is None else f'({row.goal_xy[0]:.3f}, {row.goal_xy[1]:.3f})'
        final = '-' if row.final_xy is None else f'({row.final_xy[0]:.3f}, {row.final_xy[1]:.3f})'
        goal_id = '-' if row.goal_id is None else row.goal_id
        lines.append(f'{row.index + 1:>4} {goal_id:>3} {row.source:<8} {row.steps:>5} {"yes" if row.done else "no":>4} '
                     f'{_cell(row.reward_start, "+12.4f"):>12} {_cell(row.reward_end, "+10.4f"):>10} {goal:>16} '
                     f'{final:>16} {_cell(row.distance_m, "12.3f"):>12} {"yes" if row.success else "no"}')
    successes = sum(row.success for row in rows)
    lines.append(f'success (final hand within {SUCCESS_DISTANCE_M * 100:.0f} cm of the goal state): {successes} of '
                 f'{len(rows)}')
    lines.append('goal state: imagined goal = the hand position whose latent (task camera beta-VAE) is nearest the '
                 'goal latent; scene goal = the position the arm was posed at. Rewards: /reward/latent_goal, '
                 '-|z - z_g|.')
    return '\n'.join(lines)


def plot_main_job(recording: MainJobRecording, rows: list[GoalRow], path: Path) -> Path:
    """Reward over sim time with the goal changes marked, above each goal image and the task camera's last frame of
    each reach; PNG written atomically."""
    columns = max(len(rows), 1)
    figure = new_figure(2.2 * columns + 1, 7.5)
    grid = figure.add_gridspec(3, columns, height_ratios=[2.2, 1, 1])
    rewards = figure.add_subplot(grid[0, :])
    stamps = np.array(recording.rewards.stamps_ns) / NS_PER_S
    rewards.plot(stamps, recording.rewards.values, '.-', markersize=2, linewidth=0.7, label=REWARD_TOPIC)
    for row in rows:
        rewards.axvline(row.start_s, color='tab:red', linewidth=0.8)
        rewards.text(row.start_s, 1.0, f' goal {row.index + 1}', transform=rewards.get_xaxis_transform(), va='top',
                     fontsize='small', color='tab:red')
    rewards.set_xlabel('observation stamp (sim s); red: a new goal')
    rewards.set_ylabel('latent-goal reward')
    rewards.grid(alpha=0.3)
    rewards.legend(loc='lower right', fontsize='small')
    rewards.set_title('reaching for imagined goals with the shipped RL policy')
    for column, row in enumerate(rows):
        goal_ns, end_ns = int(round(row.start_s * NS_PER_S)), int(round(row.end_s * NS_PER_S))
        for line, (image, title) in enumerate(((recording.goal_images.get(goal_ns), f'goal {row.index + 1}'),
                                               (recording.task_frames.at_or_before(end_ns),
                                                f'final, {_cell(row.distance_m, ".3f")} m'))):
            axes = figure.add_subplot(grid[line + 1, column])
            if image is not None:
                axes.imshow(image)
            axes.set_title(title, fontsize='small')
            axes.axis('off')
    return save_figure(figure, path)


def add_main_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--duration', type=float, default=600.0,
                        help='longest time to run the graph, in seconds (default 600); it stops when the last goal '
                             'is done')
    parser.add_argument('--seed', type=int, default=0, help='seed of the sim episode and of the goals (default 0)')
    parser.add_argument('--goals', type=int, default=5, help='imagined goals to reach (default 5)')
    parser.add_argument('--out', type=Path, default=None,
                        help='directory for the recorded bag and main_job.png (default: a new temporary directory)')


def report(bag: Path, out: Path) -> list[GoalRow]:
    """Print the report of a recorded main job and write its plot; the rows of the goal table."""
    from ssl_robot.rl.reachable import LatentAtlas   # the sim and the VAE: only once the graph has stopped

    recording = read_recording(bag)
    print(f'\nrecorded {bag}:\n{format_summary(summarize_bag(bag))}')
    atlas = LatentAtlas() if any(event['source'] == 'imagined' for event in recording.goals) else None
    try:
        rows = goal_rows(recording, atlas.nearest_position if atlas is not None else None)
    finally:
        if atlas is not None:
            atlas.close()
    print('\n' + format_goal_table(rows))
    print(f'plot: {plot_main_job(recording, rows, out / "main_job.png")}')
    return rows


def run_main_job(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise ValueError(f'--duration must be > 0, got {args.duration}')
    if args.goals < 1:
        raise ValueError(f'--goals must be >= 1, got {args.goals}')
    out = args.out or Path(tempfile.mkdtemp(prefix='ssl_robot_main_job_'))
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'bag'
    if bag.exists():
        raise FileExistsError(f'{bag} exists: give a new --out directory')
    command = [sys.executable, '-m', 'ssl_robot.cli', 'launch', 'main_job', f'bag:={bag}', f'seed:={args.seed}',
               f'goal_seed:={args.seed}', f'goals:={args.goals}', '--duration', str(args.duration),
               '--grace-period', str(SHUTDOWN_GRACE_S)]
    print('$ ' + ' '.join(command[2:]), flush=True)
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise ChildProcessError(f'the sim graph exited with status {status}')
    rows = report(bag, out)
    return 0 if len(rows) == args.goals else 1
