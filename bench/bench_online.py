"""Online graph latency and throughput: cameras -> embedding or goal node -> reward node, against a transport-only
echo node.

Run inside a loopback-only namespace: `make bench`, or `scripts/loopback-run python bench/bench_online.py`.
Options: --cameras K (1-3) --size S --rate HZ --warmup SECONDS --seconds SECONDS.

Every part is a process of its own, on the Fast DDS profile of the environment (scripts/loopback-run sets the
shipped SHM profile): the embedding node (shipped TCN, which also embeds and latches the demo), the goal node (shipped
CC-VAE: the latent of camera 0's frames on /latent/scene) and the reward node (imitation against the demo;
latent_goal of each scene latent against a goal latent this bench latches on /goal/latent with the goal node's model
id), with their default parameters; the echo node
(bench/echo_node.py: the same cameras through the same synchronizer, no model); and a camera publisher sending K
rgb8 frames per set at a fixed rate, all stamped with the set's one stamp (sensor-data QoS, as the sim publishes).
The frames are those of a one-episode motion demo collected from the sim at start and cycled; that bag is also the
embedding node's demo. This process receives every output.

Latency of a set: from the publish of its last camera frame to the arrival here of the output stamped with it
(CLOCK_MONOTONIC, which all processes share). latent_goal scores camera 0's frame, the first of the set published,
yet is timed from the last as well; it takes two hops (goal node, reward node) where the reward node once encoded the
frame itself. Throughput: outputs received per second of the measured window. Sets published
in the first --warmup seconds are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import Image

from bench_train import load_average
from echo_node import ECHO_TOPIC
from graph_listener import GraphListener
from ssl_robot import topics
from ssl_robot.apps.collect import collect
from ssl_robot.data.config import DataConfig
from ssl_robot.data.datasets import episode_frames
from ssl_robot.data.recordings import index_recordings
from ssl_robot.inference.model_holder import LoadedModel, default_checkpoint
from ssl_robot.ros.convert import array_to_image, ns_to_stamp
from ssl_robot.ros.netns import in_loopback_only_namespace
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

CAMERAS = ('front_left', 'front_right', 'high_side')
"""The default rig's scene cameras, which the demo bag records: K cameras are the first K of them."""
REWARD_KINDS = ('imitation', 'latent_goal')
READY_TIMEOUT_S = 180.0
DRAIN_S = 2.0
STOP_TIMEOUT_S = 15.0
NS_PER_S, NS_PER_MS = 1_000_000_000, 1_000_000


def camera_topics_of(count: int) -> list[str]:
    return [topics.camera_image(camera) for camera in CAMERAS[:count]]


# --- the camera publisher (its own process) -----------------------------------------------------------------------

def publish(frames_file: str, rate: float, seconds: float) -> None:
    """Publish the (N, K, S, S, 3) uint8 frames of frames_file, cycled, one set per period for `seconds`; print
    JSON: each set's stamp -> the monotonic time just before its last frame was published, and how late ticks were."""
    frames = np.load(frames_file)
    rclpy.init()
    node = rclpy.create_node('bench_camera_publisher')
    publishers = [node.create_publisher(Image, topic, SENSOR_QOS) for topic in camera_topics_of(frames.shape[1])]
    # Converted once: the publisher must keep its rate however busy the nodes under test keep the cores.
    messages = [[array_to_image(image, 'rgb8', ns_to_stamp(0), topics.camera_frame_id(camera))
                 for camera, image in zip(CAMERAS, views)] for views in frames]
    while min(publisher.get_subscription_count() for publisher in publishers) == 0:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle on both sides before timing
    period_ns = round(NS_PER_S / rate)
    first_stamp_ns, start_ns = time.time_ns(), time.monotonic_ns()
    published: dict[int, int] = {}
    late_ns = []
    for tick in range(round(seconds * rate)):
        due_ns = start_ns + tick * period_ns
        time.sleep(max(0, due_ns - time.monotonic_ns()) / NS_PER_S)
        late_ns.append(time.monotonic_ns() - due_ns)
        stamp_ns = first_stamp_ns + tick * period_ns
        views = messages[tick % len(messages)]
        for message in views:
            message.header.stamp = ns_to_stamp(stamp_ns)
        for publisher, message in zip(publishers[:-1], views[:-1]):
            publisher.publish(message)
        published[stamp_ns] = time.monotonic_ns()
        publishers[-1].publish(views[-1])
    print(json.dumps({'published': published, 'late_ms_p99': float(np.percentile(late_ns, 99)) / NS_PER_MS,
                      'late_ms_max': max(late_ns) / NS_PER_MS}))
    node.destroy_node()
    rclpy.shutdown()


# --- the graph under test -----------------------------------------------------------------------------------------

def demo_frames(bag: Path, camera_topics: list[str]) -> np.ndarray:
    """(N, K, S, S, 3) uint8: the camera sets of the bag's first episode, at the bag's resolution."""
    recordings = index_recordings('tcn', [bag], DataConfig(cameras=tuple(camera_topics), views=len(camera_topics)))
    return np.stack([np.stack(frame.images) for frame in episode_frames(recordings, 0)])


def ros_list(values: list[str]) -> str:
    return '[' + ','.join(values) + ']'


def node_commands(camera_topics: list[str], demo_bag: Path) -> dict[str, list[str]]:
    cameras = ros_list(camera_topics)
    return {
        'embedding_node': [sys.executable, '-m', 'ssl_robot.nodes.embedding_node', '--ros-args',
                           '-p', f'camera_topics:={cameras}', '-p', f'demo_bag:={demo_bag}',
                           '-p', f'demo_camera_topics:={cameras}'],
        'goal_node': [sys.executable, '-m', 'ssl_robot.nodes.goal_node', '--ros-args',
                      '-p', f'camera:={camera_topics[0]}'],
        'reward_node': [sys.executable, '-m', 'ssl_robot.nodes.reward_node', '--ros-args',
                        '-p', f'kinds:={ros_list(list(REWARD_KINDS))}'],
        'echo_node': [sys.executable, str(Path(__file__).with_name('echo_node.py')), '--ros-args',
                      '-p', f'camera_topics:={cameras}'],
    }


@dataclass
class NodeProcess:
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return ''.join(self.log.read_text(errors='replace').splitlines(keepends=True)[-lines:])


def start_node(command: list[str], log: Path) -> NodeProcess:
    with open(log, 'w') as output:
        return NodeProcess(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT), log)


def stop_nodes(nodes: list[NodeProcess]) -> None:
    """SIGINT every node still running, all at once, then kill those that have not stopped STOP_TIMEOUT_S later."""
    running = [node.process for node in nodes if node.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Receiver(GraphListener):
    """This process's node: latches the goal latent, and notes when each output of the graph arrives, by topic and
    stamp."""

    def __init__(self, outputs: dict[str, tuple[type, object]]) -> None:
        super().__init__('bench_online_receiver')
        self._goal_latent = self.node.create_publisher(Image, topics.GOAL_LATENT, LATCHED_QOS)
        self.arrivals: dict[str, dict[int, int]] = {
            topic: self.record_arrivals(topic, message_type, qos) for topic, (message_type, qos) in outputs.items()}

    def latch_goal_latent(self, vae: LoadedModel) -> None:
        """A goal in the space of the goal node's VAE, under its model id: the reward node scores only latents of the
        goal's weights."""
        goal = np.random.default_rng(0).normal(size=(1, vae.config.latent_dim)).astype(np.float32)
        self._goal_latent.publish(array_to_image(goal, '32FC1', ns_to_stamp(time.time_ns()), vae.model_id))

    def wait_until_ready(self, nodes: dict[str, NodeProcess], subscribers: dict[str, int],
                         publishers: list[str]) -> None:
        """Until each topic of subscribers has at least that many subscribers and each of publishers a publisher;
        exit naming a node that died, or what is still missing after READY_TIMEOUT_S."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            for name, node in nodes.items():
                if node.process.poll() is not None:
                    raise SystemExit(f'{name} exited with status {node.process.returncode} before the graph was up; '
                                     f'its log ends:\n{node.log_tail()}')
            missing = [f'{topic}: {self.node.count_subscribers(topic)}/{count} subscribers'
                       for topic, count in subscribers.items() if self.node.count_subscribers(topic) < count]
            missing += [f'{topic}: no publisher' for topic in publishers if self.node.count_publishers(topic) == 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f'the graph is not up after {READY_TIMEOUT_S:.0f} s: ' + '; '.join(missing))
            time.sleep(0.2)


def run_graph(args: argparse.Namespace, camera_topics: list[str],
              reward_topics: list[str]) -> tuple[dict, dict[str, dict[int, int]]]:
    """Collect the demo, start the nodes, publish warm-up + measured sets; the publisher's report and the arrivals."""
    with tempfile.TemporaryDirectory(prefix='bench_online_') as tmp, ExitStack() as graph:
        work = Path(tmp)
        demo_bag = work / 'demo'
        collect('motion', 1, demo_bag, image_size=(args.size, args.size), segmentation=False,
                progress=lambda line: None)
        frames_file = work / 'frames.npy'
        np.save(frames_file, demo_frames(demo_bag, camera_topics))

        receiver = Receiver({ECHO_TOPIC: (Vector3Stamped, RELIABLE_QOS), topics.EMBEDDINGS: (Image, SENSOR_QOS),
                             **{topic: (Vector3Stamped, RELIABLE_QOS) for topic in reward_topics}})
        graph.callback(receiver.close)
        receiver.latch_goal_latent(LoadedModel(default_checkpoint('ccvae'), 'ccvae', device='cpu'))
        nodes = {name: start_node(command, work / f'{name}.log')
                 for name, command in node_commands(camera_topics, demo_bag).items()}
        graph.callback(stop_nodes, list(nodes.values()))
        # Camera 0 feeds the embedding, echo and goal nodes; /embeddings the reward node and us; /latent/scene the
        # reward node.
        subscribers = {topic: 3 if topic == camera_topics[0] else 2 for topic in camera_topics}
        receiver.wait_until_ready(nodes, {**subscribers, topics.EMBEDDINGS: 2, topics.SCENE_LATENT: 1},
                                  [ECHO_TOPIC, topics.EMBEDDINGS, topics.SCENE_LATENT, *reward_topics])

        publisher = subprocess.run(
            [sys.executable, __file__, 'publish', '--frames', str(frames_file), '--rate', str(args.rate),
             '--seconds', str(args.warmup + args.seconds)], stdout=subprocess.PIPE, text=True, check=True)
        time.sleep(DRAIN_S)
        for name, node in nodes.items():
            if node.process.poll() is not None:
                print(f'warning: {name} exited with status {node.process.returncode} during the run; its log ends:\n'
                      f'{node.log_tail()}')
        return json.loads(publisher.stdout.strip().splitlines()[-1]), receiver.arrivals


# --- figures ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutputFigures:
    received: int
    sets_per_s: float
    p50_ms: float
    p99_ms: float
    """inf when more than 1 % of the sets got no output."""


def output_figures(measured: dict[int, int], arrivals: dict[int, int], window_s: float) -> OutputFigures:
    """Rate and latency (arrival - publish of the set's last frame) of one output over the measured sets. A set
    without an output counts as infinitely late, so p99 is finite only if at least 99 % of the sets got one."""
    latencies_ms = np.array([(arrivals[stamp] - published_ns) / NS_PER_MS if stamp in arrivals else np.inf
                             for stamp, published_ns in measured.items()])
    received = int(np.isfinite(latencies_ms).sum())
    p50, p99 = (float(np.percentile(latencies_ms, q, method='higher')) for q in (50, 99))
    return OutputFigures(received, received / window_s, p50, p99)


def ratio(value: float, baseline: float) -> str:
    return f'{value / baseline:.2f}' if np.isfinite(value) and np.isfinite(baseline) and baseline else '-'


def milliseconds(value: float) -> str:
    return f'{value:.2f}' if np.isfinite(value) else 'lost'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('role', nargs='?', choices=('publish',), help=argparse.SUPPRESS)
    parser.add_argument('--frames', help=argparse.SUPPRESS)
    parser.add_argument('--cameras', type=int, choices=range(1, len(CAMERAS) + 1), default=3,
                        help=f'cameras per set: the first of {", ".join(CAMERAS)}')
    parser.add_argument('--size', type=int, default=128, help='camera image side in pixels')
    parser.add_argument('--rate', type=float, default=30.0, help='camera sets per second')
    parser.add_argument('--warmup', type=float, default=20.0, help='seconds of sets published before measuring')
    parser.add_argument('--seconds', type=float, default=30.0, help='seconds of sets measured')
    args = parser.parse_args()
    if args.role == 'publish':
        return publish(args.frames, args.rate, args.seconds)
    if not in_loopback_only_namespace():
        raise SystemExit('bench_online starts ROS nodes: run it inside a loopback-only network namespace, '
                         'scripts/loopback-run python bench/bench_online.py')

    camera_topics = camera_topics_of(args.cameras)
    reward_topics = {kind: topics.reward_topic(kind) for kind in REWARD_KINDS}
    cores = len(os.sched_getaffinity(0))
    cameras = f'{args.cameras} camera{"s" if args.cameras > 1 else ""}'
    print(f'online graph: {cameras} x {args.rate:g} Hz x {args.size}x{args.size} rgb8, '
          f'{args.warmup:g} s warm-up then {args.seconds:g} s measured; {cores} CPU cores, {load_average()}',
          flush=True)
    report, arrivals = run_graph(args, camera_topics, list(reward_topics.values()))

    published = {int(stamp): published_ns for stamp, published_ns in report['published'].items()}
    measure_from_ns = min(published.values()) + round(args.warmup * NS_PER_S)
    measured = {stamp: published_ns for stamp, published_ns in published.items() if published_ns >= measure_from_ns}
    span_s = (max(measured.values()) - min(measured.values())) / NS_PER_S
    window_s = span_s + 1 / args.rate
    print(f'camera publisher: {len(measured)} sets in {window_s:.2f} s, {(len(measured) - 1) / span_s:.2f} Hz '
          f'(target {args.rate:g}); ticks late by p99 {report["late_ms_p99"]:.2f} ms, '
          f'max {report["late_ms_max"]:.2f} ms')

    labels = {ECHO_TOPIC: 'transport only', topics.EMBEDDINGS: 'embedding node',
              reward_topics['imitation']: 'embedding + reward node',
              reward_topics['latent_goal']: 'goal node VAE + reward node'}
    figures = {topic: output_figures(measured, arrivals[topic], window_s) for topic in labels}
    echo = figures[ECHO_TOPIC]
    print(f'{"output":<44} {"received":>9}  {"sets/s":>6}  {"p50 ms":>7}  {"p99 ms":>7}  {"p50/echo":>8}  '
          f'{"p99/echo":>8}')
    for topic, label in labels.items():
        row = figures[topic]
        print(f'{f"{topic} ({label})":<44} {row.received:>4}/{len(measured):<4}  {row.sets_per_s:>6.1f}  '
              f'{milliseconds(row.p50_ms):>7}  {milliseconds(row.p99_ms):>7}  {ratio(row.p50_ms, echo.p50_ms):>8}  '
              f'{ratio(row.p99_ms, echo.p99_ms):>8}')
    embedding = figures[topics.EMBEDDINGS]
    print(f'embedding node throughput: {embedding.sets_per_s:.1f} sets/s = '
          f'{ratio(embedding.sets_per_s, echo.sets_per_s)} x the echo node\'s {echo.sets_per_s:.1f} sets/s')
    target_ms = 1000 / args.rate
    for topic in reward_topics.values():
        row = figures[topic]
        measured_p99 = (f'{row.p99_ms:.2f} ms' if np.isfinite(row.p99_ms)
                        else f'infinite: {len(measured) - row.received} of {len(measured)} sets got no reward')
        print(f'target {topic}: p99 < {target_ms:.1f} ms (one frame period) on 2 CPU cores: '
              f'{"met" if row.p99_ms < target_ms else "MISSED"} (p99 {measured_p99}; {cores} cores here)')
    print(f'after the run: {load_average()}')


if __name__ == '__main__':
    main()
