"""The /diagnostics message every ssl_robot node publishes once a second."""

from __future__ import annotations

from collections.abc import Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


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
