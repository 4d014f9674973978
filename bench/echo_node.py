"""echo_node: the embedding node without a model, the transport baseline of bench/bench_online.py.

Subscribes to K camera image topics exactly as embedding_node does (sensor-data QoS, the same synchronizer with the
same parameters) and, for each synchronized set, publishes one geometry_msgs/Vector3Stamped stamped with the set's
stamp on /bench/echo, reliable as the rewards are. Whatever the online graph takes beyond this node's latency is
spent in our nodes (conversion, models, the extra hop), not in DDS or the synchronizer.

Run inside a loopback-only namespace: python bench/echo_node.py --ros-args -p camera_topics:=[...]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image

from ssl_robot.params.embedding import DEFAULT_CAMERA_TOPICS
from ssl_robot.ros.convert import ns_to_stamp, stamp_to_ns
from ssl_robot.ros.node_main import spin_node
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sync import ApproximateTimeSynchronizer

ECHO_TOPIC = '/bench/echo'
NS_PER_MS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class EchoParams:
    camera_topics: tuple[str, ...] = DEFAULT_CAMERA_TOPICS
    """image topics of the K synchronized cameras"""
    sync_queue_size: int = 10
    """frames queued per camera while waiting for the others"""
    sync_max_interval_ms: float = 10.0
    """largest stamp spread within one synchronized set (ms)"""


class EchoNode(Node):

    def __init__(self) -> None:
        super().__init__('echo')
        params = declare_params(self, EchoParams, read_only=True)
        camera_topics = list(params.camera_topics)
        self._sync = ApproximateTimeSynchronizer(
            camera_topics, queue_size=params.sync_queue_size,
            max_interval_ns=round(params.sync_max_interval_ms * NS_PER_MS))
        self._publisher = self.create_publisher(Vector3Stamped, ECHO_TOPIC, RELIABLE_QOS)
        for topic in camera_topics:
            self.create_subscription(Image, topic, functools.partial(self._on_image, topic), SENSOR_QOS)

    def _on_image(self, topic: str, message: Image) -> None:
        for synced in self._sync.add(topic, stamp_to_ns(message.header.stamp), message):
            echo = Vector3Stamped()
            echo.header.stamp = ns_to_stamp(synced.stamp_ns)
            self._publisher.publish(echo)


def main(args=None) -> int:
    return spin_node(EchoNode, 'echo_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
