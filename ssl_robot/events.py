"""The one decoder of the JSON event messages (std_msgs/String) that ssl_robot.topics writes, for input from outside.

Pure (no rclpy). An event arrives from the network or from a bag, so anything may be in it: every way it can be wrong
ends in EventError (a ValueError) naming the problem, never in another exception. Before parsing, the text's length
and its nesting depth are bounded (json recurses once per level, so 100000 nested '[' would otherwise raise
RecursionError); while parsing, NaN, Infinity and numbers that overflow a float (1e400) are refused, since every value
an event carries is finite; after parsing, the fields a consumer reads are checked for type and range, stamps within
builtin_interfaces/Time (sec an int32 >= 0, nanosec < 1e9) so that they can be published again.

    event = decode_event(text, 'ground_truth')    # the kind and stamp checked, the rest as parsed
    grasp = decode_grasp_event(text)              # GraspEvent, every field the nodes use checked
    episode = decode_episode_event(text)          # EpisodeEvent, with the camera poses of the episode
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

MAX_EVENT_CHARS = 1 << 20
"""The longest event text accepted. The longest event the sim writes (ground truth with a few dozen objects) is a few
kilobytes; a megabyte leaves room for many more objects, and bounds what one hostile message costs to parse."""
MAX_EVENT_DEPTH = 16
"""The deepest nesting of objects and arrays accepted; the sim's events nest 4 deep at most."""
NS_PER_S = 1_000_000_000
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r'[\[\]{}]')


class EventError(ValueError):
    """An event message that cannot be used: not JSON, too long or deep, non-finite, or not of the schema."""


def _refuse_constant(name: str) -> None:
    raise EventError(f'non-finite number {name}')


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise EventError(f'number {text[:40]} overflows a float')
    return value


def _nesting_depth(text: str) -> int:
    """The deepest nesting of brackets outside JSON strings (an unterminated string counts as brackets)."""
    brackets = _BRACKET.findall(_STRING.sub('', text))
    return max(accumulate(1 if bracket in '[{' else -1 for bracket in brackets), default=0)


def _parse(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise EventError(f'{what} event is a {type(text).__name__}, not text')
    if len(text) > MAX_EVENT_CHARS:
        raise EventError(f'{what} event has {len(text)} characters, more than {MAX_EVENT_CHARS}')
    depth = _nesting_depth(text)
    if depth > MAX_EVENT_DEPTH:
        raise EventError(f'{what} event nests {depth} deep, more than {MAX_EVENT_DEPTH}')
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except EventError as error:
        raise EventError(f'{what} event has a {error}') from None
    except (ValueError, RecursionError) as error:  # JSONDecodeError, an int of too many digits
        raise EventError(f'{what} event is not valid JSON: {error}') from None


def decode_event(text: Any, expected_kind: str) -> dict[str, Any]:
    """The JSON object of an event of expected_kind, whose 'stamp' is a valid stamp; EventError if it is not one."""
    event = _parse(text, expected_kind)
    if not isinstance(event, dict) or event.get('kind') != expected_kind:
        raise EventError(f'expected a {expected_kind!r} event, got {str(text)[:80]!r}')
    event_stamp(event, 'stamp')
    return event


def stamp_ns(stamp: Any, what: str) -> int:
    """Nanoseconds of a {sec, nanosec} stamp that builtin_interfaces/Time can hold; EventError otherwise."""
    if not isinstance(stamp, dict) or 'sec' not in stamp or 'nanosec' not in stamp:
        raise EventError(f'{what} is not a {{sec, nanosec}} stamp: {str(stamp)[:80]}')
    sec, nanosec = stamp['sec'], stamp['nanosec']
    if not (_is_int(sec) and 0 <= sec <= INT32_MAX and _is_int(nanosec) and 0 <= nanosec < NS_PER_S):
        raise EventError(f'{what} {{sec: {str(sec)[:24]}, nanosec: {str(nanosec)[:24]}}} is outside '
                         f'builtin_interfaces/Time (sec 0 to {INT32_MAX}, nanosec 0 to {NS_PER_S - 1})')
    return sec * NS_PER_S + nanosec


def event_stamp(event: dict[str, Any], field: str, nullable: bool = False) -> int | None:
    """The stamp in field of a decoded event, None for null when nullable; EventError if missing or bad."""
    if field not in event:
        raise EventError(f'{event.get("kind")} event has no {field!r} field')
    if event[field] is None and nullable:
        return None
    return stamp_ns(event[field], f'{event.get("kind")} event field {field!r}')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(event: dict[str, Any], field: str, kind: type, default: Any = ...) -> Any:
    """A field of a decoded event of the given type (ints within int64); default if absent and one is given."""
    if field not in event and default is not ...:
        return default
    value = event.get(field)
    valid = _is_int(value) and -INT64_MAX - 1 <= value <= INT64_MAX if kind is int else isinstance(value, kind)
    if not valid:
        expected = 'an int64' if kind is int else f'a {kind.__name__}'
        raise EventError(f'{event.get("kind")} event field {field!r} is not {expected}: {str(value)[:40]}')
    return value


@dataclass(frozen=True)
class GraspEvent:
    """A /sim/grasp_events message as the nodes read it."""
    stamp_ns: int
    attempt: int
    """-1 when the event does not say."""
    success: bool
    s_pre_ns: int
    o_ns: int | None
    """None when the grasp brought no object to the object camera."""
    s_post_ns: int


def decode_grasp_event(text: Any) -> GraspEvent:
    event = decode_event(text, 'grasp')
    return GraspEvent(stamp_ns=event_stamp(event, 'stamp'), attempt=_field(event, 'attempt', int, -1),
                      success=_field(event, 'success', bool), s_pre_ns=event_stamp(event, 's_pre'),
                      o_ns=event_stamp(event, 'o', nullable=True), s_post_ns=event_stamp(event, 's_post'))


@dataclass(frozen=True)
class CameraPose:
    """A scene camera's pose in one episode, as the sim recorded it: eye, target and up (m, world frame), vertical
    field of view (deg)."""
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov_deg: float


@dataclass(frozen=True)
class EpisodeEvent:
    """A /sim/episode message as the nodes read it."""
    stamp_ns: int
    episode: int
    seed: int
    mode: str
    behaviour: str
    rig: str = ''
    """'' when the event does not say (a bag recorded before rigs were recorded)."""
    cameras: dict[str, CameraPose] = field(default_factory=dict)
    """Each scene camera's pose by camera name; empty when the event does not say."""


def _vector3(pose: dict[str, Any], name: str, where: str) -> tuple[float, float, float]:
    value = pose.get(name)
    if not (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise EventError(f'{where} field {name!r} is not 3 numbers: {str(value)[:80]}')
    return tuple(float(v) for v in value)


def decode_camera_poses(event: dict[str, Any]) -> dict[str, CameraPose]:
    """The 'cameras' of a decoded episode event ({} when it has none), every pose checked."""
    cameras = event.get('cameras', {})
    if not isinstance(cameras, dict):
        raise EventError(f'episode event field \'cameras\' is not an object: {str(cameras)[:80]}')
    poses = {}
    for name, pose in cameras.items():
        where = f'episode event camera {name[:40]!r}'
        if not isinstance(pose, dict):
            raise EventError(f'{where} is not an object: {str(pose)[:80]}')
        fov = pose.get('fov_deg')
        if not (isinstance(fov, (int, float)) and not isinstance(fov, bool) and 0 < fov < 180):
            raise EventError(f'{where} field \'fov_deg\' is not a number in (0, 180): {str(fov)[:40]}')
        poses[name] = CameraPose(*(_vector3(pose, key, where) for key in ('eye', 'target', 'up')), float(fov))
    return poses


def decode_episode_event(text: Any) -> EpisodeEvent:
    event = decode_event(text, 'episode')
    return EpisodeEvent(stamp_ns=event_stamp(event, 'stamp'), episode=_field(event, 'episode', int),
                        seed=_field(event, 'seed', int), mode=_field(event, 'mode', str),
                        behaviour=_field(event, 'behaviour', str, ''), rig=_field(event, 'rig', str, ''),
                        cameras=decode_camera_poses(event))


def decode_sim_step(text: Any) -> tuple[int, int]:
    """(start, end) stamps of a /sim/step answer (topics.encode_sim_step): the period ran from start to end."""
    event = decode_event(text, 'sim_step')
    start_ns, end_ns = event_stamp(event, 'start'), event_stamp(event, 'stamp')
    if end_ns <= start_ns:
        raise EventError(f'sim_step event ends at {end_ns} ns, not after its start {start_ns} ns')
    return start_ns, end_ns
