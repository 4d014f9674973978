"""diagnostics_monitor_node: a node whose diagnostics stopped arriving shows as STALE on /diagnostics.

It listens to /diagnostics and remembers when each status name (e.g. ssl_robot/sim) was last heard, by this
node's steady clock (arrival time, not stamps: a stalled sim must not hide a dead node). Every check_period_s it
publishes, on /diagnostics, one status per name silent for longer than stale_after_s: level STALE (3, the
diagnostic_msgs convention), the same name, hardware_id 'ssl_robot/diagnostics_monitor' and a message saying
how long it has been silent. STALE statuses (its own included) are not signs of life. Pure part:
ssl_robot/health/liveness.py.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node

from ssl_robot import topics
from ssl_robot.health.liveness import LivenessTracker
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.diagnostics_monitor import DiagnosticsMonitorParams
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import RELIABLE_QOS

HARDWARE_ID = 'ssl_robot/diagnostics_monitor'


class DiagnosticsMonitorNode(Node):

    def __init__(self) -> None:
        super().__init__('diagnostics_monitor')
        self.params = declare_params(self, DiagnosticsMonitorParams, read_only=True)
        self._tracker = LivenessTracker(self.params.stale_after_s)
        self._publisher = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)
        self.create_timer(self.params.check_period_s, self._report_stale)

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        now = time.monotonic()
        for status in message.status:
            if status.level != DiagnosticStatus.STALE:
                self._tracker.heard(status.name, now)

    def _report_stale(self) -> None:
        stale = self._tracker.stale(time.monotonic())
        if not stale:
            return
        array = DiagnosticArray(status=[
            DiagnosticStatus(level=DiagnosticStatus.STALE, name=name, hardware_id=HARDWARE_ID,
                             message=f'no diagnostics for {silent:.1f} s')
            for name, silent in stale.items()])
        array.header.stamp = self.get_clock().now().to_msg()
        self._publisher.publish(array)


def main(args=None) -> int:
    return spin_node(DiagnosticsMonitorNode, 'diagnostics_monitor_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
