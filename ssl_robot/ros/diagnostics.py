"""The /diagnostics message every ssl_robot node publishes once a second, and the wall-clock timer it runs on."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.timer import Timer


def diagnostic_array(name: str, hardware_id: str, problems: str, values: Mapping[str, str],
                     stamp: Time) -> DiagnosticArray:
    """One status: WARN with the problems seen since the last message, else OK 'running'; values as key-values."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id,
                              level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
                              message=problems or 'running',
                              values=[KeyValue(key=key, value=value) for key, value in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def wall_timer(node: Node, period_s: float, callback: Callable[[], None]) -> Timer:
    """A timer of node on the steady (wall) clock. A node with use_sim_time runs its own timers on /clock, which stops
    when the sim does: liveness checks and diagnostics must go on then, to say so."""
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))
