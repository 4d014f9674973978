"""A node whose diagnostics stop arriving shows as STALE: the pure tracker (ssl_robot/health/liveness.py) and the
diagnostics monitor node on a live graph."""

from __future__ import annotations

import pytest

from ssl_robot.health.liveness import LivenessTracker


def test_a_name_silent_for_longer_than_the_timeout_is_stale_until_heard_again():
    tracker = LivenessTracker(stale_after_s=5.0)
    tracker.heard('ssl_robot/sim', 100.0)
    tracker.heard('ssl_robot/embedding', 100.0)
    assert tracker.stale(105.0) == {}
    tracker.heard('ssl_robot/embedding', 104.0)
    assert tracker.stale(106.0) == {'ssl_robot/sim': 6.0}
    tracker.heard('ssl_robot/sim', 106.5)
    assert tracker.stale(107.0) == {}


def test_names_never_heard_are_not_stale_and_late_arrivals_do_not_go_back_in_time():
    tracker = LivenessTracker(stale_after_s=1.0)
    assert tracker.stale(1000.0) == {}
    tracker.heard('a', 10.0)
    tracker.heard('a', 5.0)  # an older report processed late
    assert tracker.stale(10.5) == {}


@pytest.mark.parametrize('bad', [0.0, -1.0, float('inf'), float('nan')])
def test_the_timeout_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match='stale_after_s'):
        LivenessTracker(bad)


@pytest.mark.ros
def test_the_monitor_reports_a_node_whose_diagnostics_stopped_as_stale_on_diagnostics(probe):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from ros_harness import node_process
    from ssl_robot.ros.qos import RELIABLE_QOS

    received: list[DiagnosticStatus] = []

    def on_diagnostics(message: DiagnosticArray) -> None:
        with probe.lock:
            received.extend(message.status)

    publisher = probe.node.create_publisher(DiagnosticArray, '/diagnostics', RELIABLE_QOS)
    probe.node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, RELIABLE_QOS)
    params = {'stale_after_s': 1.0, 'check_period_s': 0.2}
    with node_process('ssl_robot.nodes.diagnostics_monitor_node', 'diagnostics_monitor', params) as monitor:
        probe.wait_for(lambda: probe.node.count_subscribers('/diagnostics') >= 2 and
                       publisher.get_subscription_count() >= 2, 60, 'the monitor to subscribe')
        for level in (DiagnosticStatus.OK, DiagnosticStatus.WARN):
            publisher.publish(DiagnosticArray(status=[DiagnosticStatus(level=level, name='test/quiet', message='x')]))
        # Then nothing more from test/quiet, as from a node that died.
        probe.wait_for(lambda: any(s.level == DiagnosticStatus.STALE and s.name == 'test/quiet' for s in received),
                       60, 'a STALE status for test/quiet')
        stale = next(s for s in received if s.level == DiagnosticStatus.STALE)
        assert stale.hardware_id == 'ssl_robot/diagnostics_monitor' and 'no diagnostics for' in stale.message
        assert monitor.poll() is None, ''.join(monitor.output)
