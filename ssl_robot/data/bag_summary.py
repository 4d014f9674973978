"""What a bag holds, per topic: type, message count, rate and whether its definition is stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    msgtype: str
    count: int
    rate_hz: float
    has_definition: bool


def summarize_bag(path: str | Path) -> list[TopicSummary]:
    """Per-topic summary of a rosbag2 bag, read with rosbags (no ROS needed); sorted by topic."""
    with Reader(Path(path)) as reader:
        duration_s = max(reader.duration, 1) / 1e9
        return sorted(
            (TopicSummary(topic=c.topic, msgtype=c.msgtype, count=c.msgcount,
                          rate_hz=(c.msgcount - 1) / duration_s if c.msgcount > 1 else 0.0,
                          has_definition=bool(c.msgdef.data) if c.msgdef else False)
             for c in reader.connections),
            key=lambda s: s.topic)


def format_summary(rows: list[TopicSummary]) -> str:
    width = max((len(r.topic) for r in rows), default=5)
    type_width = max((len(r.msgtype) for r in rows), default=4)
    lines = [f'{"topic":<{width}}  {"type":<{type_width}}  {"count":>6}  {"rate Hz":>7}  definition']
    lines += [f'{r.topic:<{width}}  {r.msgtype:<{type_width}}  {r.count:>6}  {r.rate_hz:>7.1f}  '
              f'{"yes" if r.has_definition else "MISSING"}' for r in rows]
    return '\n'.join(lines)
