"""The sim graph as the soak and fault benchmarks run it: `ssl-robot launch sim` (sim, diagnostics monitor and the
learning nodes, default size, the launch file's respawn) as a child process, and a listener noting, as they arrive
here, the camera sets, the rewards, the embeddings and each learning node's /diagnostics.

A camera set is one sim tick: every scene camera's frame of a tick carries the tick's stamp. The listener's copy of
the cameras is best effort (sensor QoS, as the nodes subscribe), so a set is known here by the first frame of any
camera that arrived with its stamp.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from graph_listener import GraphListener
from ssl_robot import topics
from ssl_robot.ros.process_supervision import SHUTDOWN_GRACE_S
from ssl_robot.ros.qos import RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sim.config import load_sim_config

LEARNING_NODES = ('embedding', 'reward', 'grasp2vec', 'goal')
"""The nodes learning.launch.xml starts, with respawn, in its order."""
REWARD_KINDS = ('latent_goal', 'grasp2vec')
"""Passed to the launch explicitly (they are its default), so that the figures know which rewards to expect."""
PER_SET_REWARD_KINDS = ('imitation', 'latent_goal')
"""Kinds the reward node publishes for every camera set (every frame of its camera); grasp2vec is one per grasp."""
MONITOR_HARDWARE_ID = 'ssl_robot/diagnostics_monitor'
READY_TIMEOUT_S = 300.0
"""Bound on the graph coming up: the learning nodes load torch and their checkpoints on cores the RL runs share."""
NS_PER_S = 1_000_000_000


def diagnostic_name(node: str) -> str:
    return f'ssl_robot/{node}'


def launch_sim_graph(log: Path, mode: str, bound_s: float) -> subprocess.Popen:
    """Start the sim graph; it shuts itself down after bound_s (--duration), so a benchmark that dies cannot leave
    it running for long."""
    command = [sys.executable, '-m', 'ssl_robot.cli', 'launch', 'sim', f'mode:={mode}',
               f'reward_kinds:=[{", ".join(REWARD_KINDS)}]', '--duration', f'{bound_s:.0f}']
    with open(log, 'w') as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def stop_sim_graph(runner: subprocess.Popen) -> None:
    """SIGINT the runner (it stops its nodes: SIGINT, then SIGTERM and SIGKILL a grace period apart), and kill it
    if it has not ended well after that."""
    if runner.poll() is None:
        runner.send_signal(signal.SIGINT)
    try:
        runner.wait(timeout=3 * SHUTDOWN_GRACE_S + 15)
    except subprocess.TimeoutExpired:
        runner.kill()  # its nodes get SIGTERM from the kernel: the runner sets them a parent-death signal
        runner.wait()


def log_tail(log: Path, lines: int = 30) -> str:
    return ''.join(log.read_text(errors='replace').splitlines(keepends=True)[-lines:])


class SimGraphListener(GraphListener):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.camera_topics = [topics.camera_image(camera.name) for camera in load_sim_config().cameras]
        self.set_arrivals: dict[int, int] = {}
        for topic in self.camera_topics:
            self.record_arrivals(topic, Image, SENSOR_QOS, self.set_arrivals)
        self.reward_arrivals = {kind: self.record_arrivals(topics.reward_topic(kind), Vector3Stamped, RELIABLE_QOS)
                                for kind in REWARD_KINDS}
        self.embedding_arrivals = self.record_arrivals(topics.EMBEDDINGS, Image, SENSOR_QOS)
        self.diagnostics_heard: dict[str, list[int]] = {node: [] for node in LEARNING_NODES}
        self._node_of_status = {diagnostic_name(node): node for node in LEARNING_NODES}
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)
        self._goal_sample = self.node.create_client(Trigger, topics.GOAL_SAMPLE_SERVICE)

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        now_ns = time.monotonic_ns()
        for status in message.status:
            node = self._node_of_status.get(status.name)
            # The monitor's STALE statuses carry the silent node's name, but say that it is silent.
            heard = status.level != DiagnosticStatus.STALE and status.hardware_id != MONITOR_HARDWARE_ID
            if node is not None and heard:
                self.diagnostics_heard[node].append(now_ns)

    def newest_set_stamp(self) -> int:
        return max(dict(self.set_arrivals), default=0)

    def wait_for_rewards(self, runner: subprocess.Popen, log: Path, kind: str = 'latent_goal') -> None:
        """Until a `kind` reward arrives. The goal node draws a goal at each episode's first frame, but may not have
        been up for the first one: ask it for a goal (/goal/sample) until it has made one. Exit naming the reason
        if the runner ends or READY_TIMEOUT_S passes."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        goal_asked = None
        while not self.reward_arrivals[kind]:
            if runner.poll() is not None:
                raise SystemExit(f'the launch ended with status {runner.returncode} before {kind} rewards came; '
                                 f'its log ends:\n{log_tail(log)}')
            if time.monotonic() > deadline:
                raise SystemExit(f'no {kind} reward within {READY_TIMEOUT_S:.0f} s of the launch; '
                                 f'its log ends:\n{log_tail(log)}')
            if (goal_asked is None or goal_asked.done()) and self._goal_sample.service_is_ready():
                if goal_asked is None or not goal_asked.result().success:
                    goal_asked = self._goal_sample.call_async(Trigger.Request())
            time.sleep(0.5)
