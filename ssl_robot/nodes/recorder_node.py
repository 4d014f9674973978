"""recorder_node: record topics of the live graph into a rosbag2 bag, like `ros2 bag record`.

Messages are taken as serialized bytes (raw subscriptions) and stored as received, stamped with their
receive time on the system clock, as rosbag2 does; /clock plays no part, so a simulator reset does not
reorder the bag. Topics are found by polling the graph, so a topic that appears after the recorder
started is recorded from then on. Each subscription copies its publishers' offered QoS: a best-effort
request would take reliable publishers' messages without retransmission and would miss what a latched
(transient local) publisher holds for late joiners.

The bag is made durable every flush_period_s (see ssl_robot.data.bag_writer): a recorder killed with
SIGKILL leaves a readable bag missing at most about that much (bench/bench_recorder_kill.py measures it);
Ctrl-C or SIGTERM closes it cleanly. With MCAP storage every flush starts a new split file, one a second
by default. When the disk is about to fill (min_free_mb left), the recorder flushes, closes the bag and
exits with status 1 and one line saying so.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import time
from datetime import datetime
from pathlib import Path

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo, Subscription
from rclpy.task import Future
from rclpy.topic_endpoint_info import TopicEndpointInfo
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from ssl_robot.data.bag_writer import STORAGES, BagWriter, DiskFull
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.recorder import RecorderParams
from ssl_robot.ros.parameters import declare_params

RECORD_DEPTH = 100
"""Subscription queue per topic: absorbs a disk stall of a few seconds at camera rates."""
DISCOVERY_PERIOD_S = 0.5
FLUSH_CHECKS_PER_PERIOD = 4
"""A quiet topic's last messages wait at most flush_period_s * (1 + 1/FLUSH_CHECKS_PER_PERIOD) to be durable."""


def default_output() -> str:
    """ros2 bag's default bag name, in the working directory."""
    return datetime.now().strftime('rosbag2_%Y_%m_%d-%H_%M_%S')


def message_class(msgtype: str) -> type:
    """The Python class of a 'pkg/msg/Type' name."""
    package, interface, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{interface}'), name)


def recording_qos(publishers: list[TopicEndpointInfo]) -> QoSProfile:
    """The strongest QoS that still matches every publisher of a topic."""
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RECORD_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _qos_time(duration) -> QosTime:
    seconds, nanoseconds = divmod(duration.nanoseconds, 1_000_000_000)
    return QosTime(seconds, nanoseconds)


def offered_qos(publisher: TopicEndpointInfo) -> Qos:
    """A publisher's offered QoS in the form rosbag2 metadata stores it."""
    profile = publisher.qos_profile
    return Qos(QosHistory[profile.history.name], profile.depth, QosReliability[profile.reliability.name],
               QosDurability[profile.durability.name], _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness[profile.liveliness.name], _qos_time(profile.liveliness_lease_duration),
               profile.avoid_ros_namespace_conventions)


def is_hidden(topic: str) -> bool:
    return any(part.startswith('_') for part in topic.split('/'))


class RecorderNode(Node):

    def __init__(self, **kwargs) -> None:
        super().__init__('recorder', **kwargs)
        # rclpy destroys the nodes of a context at shutdown, this one too if its construction failed.
        self._bag: BagWriter | None = None
        self.params = params = declare_params(self, RecorderParams, read_only=False)
        self._selected = {self.resolve_topic_name(topic) for topic in params.topics}
        self.output = Path(params.output or default_output())
        self._bag = BagWriter(self.output, params.storage, flush_period_s=params.flush_period_s,
                              min_free_bytes=int(params.min_free_mb * 2**20))

        self.finished = Future()
        """Done once max_duration_s has passed, failed (DiskFull) if the disk filled; spin until it."""
        # Not `_subscriptions`: rclpy's Node keeps its own list under that name.
        self._recorded: dict[str, tuple[Subscription, QoSProfile]] = {}
        self._unrecordable: set[str] = set()
        self.create_timer(DISCOVERY_PERIOD_S, self._discover)
        self.create_timer(params.flush_period_s / FLUSH_CHECKS_PER_PERIOD, self._bag.flush_if_due)
        if params.max_duration_s:
            self.create_timer(params.max_duration_s, self._stop)
        self.get_logger().info(
            f'recording {sorted(self._selected) if self._selected else "all topics"} to {self.output} '
            f'({params.storage})')
        self._discover()

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if not self._wanted(topic):
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            if len(types) != 1:
                self._skip(topic, f'it has several types {types}')
                continue
            qos = recording_qos(publishers)
            current = self._recorded.get(topic)
            if current is None:
                self._subscribe(topic, types[0], qos, publishers)
            elif current[1] != qos:
                # A publisher with weaker QoS joined: the old subscription would not match it.
                self.destroy_subscription(current[0])
                self._recorded[topic] = (self._create_raw_subscription(topic, types[0], qos), qos)

    def _wanted(self, topic: str) -> bool:
        if topic in self._unrecordable:
            return False
        return topic in self._selected if self._selected else not is_hidden(topic)

    def _subscribe(self, topic: str, msgtype: str, qos: QoSProfile, publishers: list[TopicEndpointInfo]) -> None:
        try:
            message_class(msgtype)  # an unimportable type must fail before the topic enters the bag
            self._bag.add_topic(topic, msgtype, [offered_qos(p) for p in publishers])
        except (ValueError, ImportError, AttributeError) as error:
            self._skip(topic, str(error))
            return
        self._recorded[topic] = (self._create_raw_subscription(topic, msgtype, qos), qos)
        self.get_logger().info(f'recording {topic} ({msgtype}, {qos.reliability.name.lower()}, '
                               f'{qos.durability.name.lower()})')

    def _create_raw_subscription(self, topic: str, msgtype: str, qos: QoSProfile) -> Subscription:
        return self.create_subscription(message_class(msgtype), topic, functools.partial(self._record, topic),
                                        qos, raw=True)

    def _skip(self, topic: str, reason: str) -> None:
        self._unrecordable.add(topic)
        self.get_logger().warning(f'not recording {topic}: {reason}')

    def _record(self, topic: str, data: bytes, info: MessageInfo) -> None:
        if self.finished.done():
            return
        received_ns = info['received_timestamp'] or time.time_ns()
        try:
            self._bag.write(topic, received_ns, data)
        except DiskFull as error:
            self.finished.set_exception(error)

    def _stop(self) -> None:
        if not self.finished.done():
            self.get_logger().info(f'max_duration_s reached: {self._bag.message_count} messages in {self.output}')
            self.finished.set_result(True)

    def destroy_node(self) -> None:
        # A shutdown at any point (Ctrl-C, SIGTERM, max_duration_s) must leave a complete bag.
        if self._bag is not None:
            self._bag.close()
        super().destroy_node()


def _spin_recorder(executable: str, init_args: list[str] | None, parameter_overrides: list[Parameter]) -> int:
    return spin_node(lambda: RecorderNode(parameter_overrides=parameter_overrides), executable, init_args,
                     until=lambda node: node.finished)


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('topics', nargs='*', metavar='TOPIC', help='topics to record (default: all)')
    parser.add_argument('-o', '--output', default='', help='bag directory to create (default: rosbag2_<date-time>)')
    parser.add_argument('--storage', choices=STORAGES, default='mcap', help='bag storage (default mcap)')
    parser.add_argument('--duration', type=float, default=0.0, metavar='S',
                        help='stop after S seconds (default: until Ctrl-C)')
    parser.add_argument('--flush-period', type=float, default=1.0, metavar='S',
                        help='seconds between flushes, about what a killed recorder loses (default 1)')


def run_record(args: argparse.Namespace) -> int:
    overrides = [Parameter('output', value=str(args.output)), Parameter('storage', value=args.storage),
                 Parameter('max_duration_s', value=float(args.duration)),
                 Parameter('flush_period_s', value=float(args.flush_period))]
    if args.topics:
        overrides.append(Parameter('topics', value=list(args.topics)))
    return _spin_recorder('ssl-robot record', None, overrides)


def main(args: list[str] | None = None) -> int:
    return _spin_recorder('recorder_node', args, [])


if __name__ == '__main__':
    raise SystemExit(main())
