"""Camera publish-to-receive latency across processes: Fast DDS defaults vs the shipped SHM profile.

Run inside a loopback-only namespace: `make bench`, or `scripts/loopback-run python bench/bench_transport.py`.
A publisher process sends K camera images per tick at 30 Hz, stamped with the wall clock just before
publish; a subscriber process (best effort, as camera consumers subscribe) measures receive - stamp.
Both transports run in the same invocation, each in fresh processes with their own domain id.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / 'config' / 'fastdds_shm.xml'


def publish(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from ssl_robot.ros.convert import array_to_image, ns_to_stamp
    from ssl_robot.ros.qos import SENSOR_QOS

    rclpy.init()
    node = rclpy.create_node('bench_camera_publisher')
    publishers = [node.create_publisher(Image, f'/bench/cam{i}/image_raw', SENSOR_QOS) for i in range(args.cameras)]
    while min(p.get_subscription_count() for p in publishers) == 0:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle on both sides before timing
    pixels = np.random.default_rng(0).integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    period = 1.0 / args.rate
    next_tick = time.monotonic()
    for _ in range(int(args.seconds * args.rate)):
        stamp = ns_to_stamp(time.time_ns())
        for publisher in publishers:
            publisher.publish(array_to_image(pixels, 'rgb8', stamp, 'cam'))
        next_tick += period
        time.sleep(max(0.0, next_tick - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


def subscribe(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from ssl_robot.ros.convert import stamp_to_ns
    from ssl_robot.ros.qos import SENSOR_QOS

    rclpy.init()
    node = rclpy.create_node('bench_camera_subscriber')
    latencies_ms: list[float] = []
    for i in range(args.cameras):
        node.create_subscription(
            Image, f'/bench/cam{i}/image_raw',
            lambda m: latencies_ms.append((time.time_ns() - stamp_to_ns(m.header.stamp)) / 1e6), SENSOR_QOS)
    deadline = time.monotonic() + args.seconds + 8
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    sent = int(args.seconds * args.rate) * args.cameras
    print(json.dumps({'received': len(latencies_ms), 'sent': sent,
                      'p50_ms': float(np.percentile(latencies_ms, 50)) if latencies_ms else None,
                      'p99_ms': float(np.percentile(latencies_ms, 99)) if latencies_ms else None}))
    node.destroy_node()
    rclpy.shutdown()


def measure(profile: Path | None, domain_id: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    env.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    if profile is not None:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    common = ['--cameras', str(args.cameras), '--width', str(args.width), '--height', str(args.height),
              '--seconds', str(args.seconds), '--rate', str(args.rate)]
    subscriber = subprocess.Popen([sys.executable, __file__, 'subscribe', *common], env=env,
                                  stdout=subprocess.PIPE, text=True)
    subprocess.run([sys.executable, __file__, 'publish', *common], env=env, check=True)
    output, _ = subscriber.communicate(timeout=60)
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('role', nargs='?', choices=('publish', 'subscribe'), help=argparse.SUPPRESS)
    parser.add_argument('--cameras', type=int, default=3)
    parser.add_argument('--width', type=int, default=None)
    parser.add_argument('--height', type=int, default=None)
    parser.add_argument('--seconds', type=float, default=6.0)
    parser.add_argument('--rate', type=float, default=30.0)
    args = parser.parse_args()
    if args.role == 'publish':
        return publish(args)
    if args.role == 'subscribe':
        return subscribe(args)

    base_domain = int(os.environ.get('ROS_DOMAIN_ID', '0')) % 100 + 110
    sizes = [(args.width, args.height)] if args.width else [(128, 128), (640, 480)]
    print(f'{"resolution":>10}  {"transport":<22} {"received":>12}  {"p50 ms":>7}  {"p99 ms":>7}')
    for size_index, (width, height) in enumerate(sizes):
        args.width, args.height = width, height
        for transport_index, (name, profile) in enumerate((('Fast DDS defaults', None),
                                                           ('shipped SHM profile', PROFILE))):
            result = measure(profile, base_domain + 2 * size_index + transport_index, args)
            p50 = f'{result["p50_ms"]:.2f}' if result['p50_ms'] is not None else '-'
            p99 = f'{result["p99_ms"]:.2f}' if result['p99_ms'] is not None else '-'
            print(f'{width:>4}x{height:<5}  {name:<22} {result["received"]:>5}/{result["sent"]:<6}  '
                  f'{p50:>7}  {p99:>7}', flush=True)


if __name__ == '__main__':
    main()
