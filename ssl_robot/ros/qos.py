"""The three QoS profiles every ssl_robot publisher and subscriber picks from.

A subscription only matches a publisher whose offered QoS is at least as strong as the one it requests
(reliable >= best effort, transient local >= volatile), so both ends of a topic use the same profile
from here instead of spelling out their own.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

SENSOR_QOS: QoSProfile = qos_profile_sensor_data
"""Camera images, camera info, joint states, poses: high-rate streams where the newest sample matters
and a lost one is replaced by the next (best effort, keep last 5, volatile). A reliable subscriber does
not match these publishers; subscribe with SENSOR_QOS too."""

RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Commands, rewards and events: every message counts, so lost samples are retransmitted
(reliable, keep last 10, volatile)."""

LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Goals, object lists, episode info: state that changes rarely and that a node started later must
still receive, so the publisher keeps the last message for late joiners (reliable, transient local,
keep last 1). Subscribers must request TRANSIENT_LOCAL as well to get the stored message."""
