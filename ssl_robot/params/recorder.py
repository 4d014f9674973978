"""recorder_node's parameters (config/recorder.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.data.bag_writer import STORAGES
from ssl_robot.params.checks import require_at_least, require_choice, require_positive


@dataclass(frozen=True, kw_only=True)
class RecorderParams:
    topics: tuple[str, ...] = ()
    """topics to record; unset or empty records every topic except hidden ones"""
    output: str = ''
    """bag directory to create (must not exist); empty: rosbag2_<date-time>"""
    storage: str = 'mcap'
    """bag storage, mcap or sqlite3"""
    max_duration_s: float = 0.0
    """stop after this many seconds; 0 records until shut down"""
    flush_period_s: float = 1.0
    """seconds between flushes: about this much is lost if killed"""
    min_free_mb: float = 32.0
    """stop recording (bag closed, exit status 1) when the disk has this little space left: finishing the bag needs
    it"""

    def __post_init__(self) -> None:
        require_choice(self, 'storage', STORAGES)
        require_at_least(self, 'max_duration_s', 0.0)
        require_positive(self, 'flush_period_s')
        require_at_least(self, 'min_free_mb', 0.0)
