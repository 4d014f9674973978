"""What a SIGKILLed recorder loses: seconds of messages between the last one in its bag and the kill.

Run inside a loopback-only namespace: `make bench`, or `scripts/loopback-run python bench/bench_recorder_kill.py`.
This process publishes a counter at --rate Hz, stamped with the wall clock at publish. A recorder_node process
(its shipped defaults: flush_period_s from config/recorder.yaml) records it; after a random 2-5 s it is SIGKILLed.
The loss of one kill is kill time - publish time of the last message in the bag. Repeated --kills times.
Printed, not asserted; the target (issue 12) is about 1 s.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from ssl_robot.ros.qos import RELIABLE_QOS

ROOT = Path(__file__).resolve().parent.parent
TOPIC = '/bench/counter'


def last_publish_time(bag: Path) -> float | None:
    """Wall-clock publish time (seconds) of the newest message the bag holds; None if it holds none."""
    if not (bag / 'metadata.yaml').exists():
        return None
    with Reader(bag) as reader:
        times = [float(deserialize_message(data, String).data) for _, _, data in reader.messages()]
    return max(times, default=None)


def one_kill(node, publisher, bag: Path, rate: float, record_s: float) -> float:
    recorder = subprocess.Popen(
        [sys.executable, '-m', 'ssl_robot.nodes.recorder_node', '--ros-args', '--params-file',
         str(ROOT / 'config' / 'recorder.yaml'), '-p', f'output:={bag}', '-p', f'topics:=[{TOPIC}]'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while publisher.get_subscription_count() == 0:
            rclpy.spin_once(node, timeout_sec=0.05)
        start = time.monotonic()
        while time.monotonic() - start < record_s:
            publisher.publish(String(data=repr(time.time())))
            time.sleep(1.0 / rate)
        killed_at = time.time()
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=30)
    finally:
        recorder.kill()
    last = last_publish_time(bag)
    return killed_at - last if last is not None else float('inf')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=8)
    parser.add_argument('--rate', type=float, default=100.0, help='messages per second')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    draw = random.Random(args.seed)
    rclpy.init()
    node = rclpy.create_node('bench_recorder_kill')
    publisher = node.create_publisher(String, TOPIC, RELIABLE_QOS)
    losses = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(args.kills):
            losses.append(one_kill(node, publisher, Path(scratch) / f'bag{index}', args.rate, draw.uniform(2, 5)))
            time.sleep(0.5)  # the killed recorder's subscription must leave the graph before the next one joins
    node.destroy_node()
    rclpy.shutdown()
    loss = np.array(losses)
    print(f'recorder SIGKILL loss over {len(loss)} kills at {args.rate:g} msg/s: median {np.median(loss):.2f} s, '
          f'p90 {np.percentile(loss, 90):.2f} s, max {loss.max():.2f} s (target about 1 s)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
