"""InputMonitor: silence by wall-clock arrival per input, and receive rates beside processed rates. Pure."""

from __future__ import annotations

from ssl_robot.health.input_monitor import InputMonitor


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_silence_is_judged_per_input_by_arrival_not_by_stamps():
    clock = FakeClock()
    monitor = InputMonitor(['a', 'b'], clock)
    clock.now += 1.0
    assert monitor.silent(2.0) == {}
    clock.now += 1.5
    assert monitor.silent(2.0) == {'a': 2.5, 'b': 2.5}  # nothing ever came: counted from the start
    monitor.arrived('a')  # whatever its stamp says
    clock.now += 1.0
    assert monitor.silent(2.0) == {'b': 3.5}
    monitor.arrived('b')
    assert monitor.silent(2.0) == {}


def test_rates_compare_what_was_received_with_what_was_processed_since_the_last_report():
    clock = FakeClock()
    monitor = InputMonitor(['cam_a', 'cam_b'], clock)
    for _ in range(30):
        monitor.arrived('cam_a')
        monitor.arrived('cam_b')
    clock.now += 1.0
    assert monitor.rate_values({'published': 10}) == {
        'received_cam_a': '30', 'received_cam_b': '30', 'receive_hz_cam_a': '30.0', 'receive_hz_cam_b': '30.0',
        'published_hz': '10.0'}
    for _ in range(4):
        monitor.arrived('cam_a')
    clock.now += 2.0
    values = monitor.rate_values({'published': 11})
    assert values['received_cam_a'] == '34' and values['receive_hz_cam_a'] == '2.0'
    assert values['receive_hz_cam_b'] == '0.0' and values['published_hz'] == '0.5'
