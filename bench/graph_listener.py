"""A node of a benchmark's own process that observes the graph under test: an rclpy context of its own, spun in a
thread of its own, noting when messages arrive (CLOCK_MONOTONIC, which every process on the machine shares)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from ssl_robot.ros.convert import stamp_to_ns


def arrival_recorder(arrivals: dict[int, int]) -> Callable[[object], None]:
    """A callback noting the monotonic time at which the first message of each stamp arrived."""
    def on_message(message) -> None:
        now_ns = time.monotonic_ns()
        arrivals.setdefault(stamp_to_ns(message.header.stamp), now_ns)
    return on_message


class GraphListener:
    """Subscriptions may be added while it spins. The dicts it fills are written by the spin thread only: read them
    through a copy (dict(d) copies in one step under the GIL)."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def record_arrivals(self, topic: str, message_type: type, qos, arrivals: dict[int, int] | None = None
                        ) -> dict[int, int]:
        """Note the first arrival of each stamp on topic into arrivals (a new dict unless given: several topics may
        share one, for the first arrival of a stamp on any of them); return it."""
        arrivals = {} if arrivals is None else arrivals
        self.node.create_subscription(message_type, topic, arrival_recorder(arrivals), qos)
        return arrivals

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
