"""diagnostics_monitor_node's parameters (config/diagnostics_monitor.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_positive


@dataclass(frozen=True, kw_only=True)
class DiagnosticsMonitorParams:
    stale_after_s: float = 5.0
    """a status name not heard for this long (steady time) is reported STALE"""
    check_period_s: float = 1.0
    """how often silent names are looked for and reported"""

    def __post_init__(self) -> None:
        require_positive(self, 'stale_after_s', 'check_period_s')
