"""The pure part of RosGoalEnv (ssl_robot.rl_ros): its config, and how a step pairs what the graph sends back.

A RosGoalEnv step publishes a hand target and waits for the first camera frame stamped one control period after
the action (on the node's clock: /clock with sim time, the system clock on a robot) whose scene latent
(/latent/scene) and reward (/reward/latent_goal) have both arrived. The two come from different nodes, each of
which may skip frames when it falls behind (sensor-data QoS keeps the newest), so a step takes the earliest stamp
both streams carry (first_common_stamp), not the first of either.

With a stepped sim (RosEnvConfig.stepping 'on_request', the sim node's stepping on_request) the sim waits for the env
instead: a step publishes the target, asks /sim/step for one control period and waits for the scene latent and reward
of the period's last tick, the stamp /sim/step answers with. A wait for something that needs sim time (the arm at
rest, a reward scored against a new goal) asks for another period each time the streams it watches have caught up
with the sim (caught_up) and it is still not there. Nothing here imports rclpy.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from ssl_robot.typed_config import convert_fields

NS_PER_S = 1_000_000_000
STEPPING = ('free', 'on_request')
Value = TypeVar('Value')


@dataclass(frozen=True, kw_only=True)
class RosEnvConfig:
    """How a RosGoalEnv talks to the graph. What it learns (task, episode length, action size, VAE) is its
    EnvConfig, as for TrayGoalEnv."""

    namespace: str = ''
    """The robot's namespace (launch argument `namespace`); '' = the root namespace."""
    use_sim_time: bool = True
    """Follow /clock (the sim); false on a robot (robot.launch.xml), whose stamps are system time."""
    sim_services: bool = True
    """reset resets the sim (/sim/reset) and closes the gripper (/gripper/set_closed), the sim node's services;
    false on a robot, whose driver offers neither: reset then moves the hand to the start and asks for a goal."""
    reward_kind: str = 'latent_goal'
    """The reward stream the env returns: /reward/<reward_kind>, stamped as the frame it scores."""
    timeout_s: float = 10.0
    """Wall seconds any wait (a step's reward, a reset's goal, a service) may take before it fails, naming what
    did not arrive."""
    at_rest_joint_speed: float = 0.02
    """rad/s: the arm counts as at rest (after a reset's move to the start or goal position) when every joint of
    /joint_states moves slower than this; its messages must carry velocities."""
    goal_match_tolerance: float = 1e-4
    """After a new goal, rewards count only once the reward node scores against it: the distance a reward reports
    (its vector.y) must equal |z - z_g| of the frame's scene latent within this."""

    stepping: str = 'free'
    """'free': follow a sim that runs on its own (the sim node's stepping free, the default of every launch file);
    'on_request': ask the sim for each control period (/sim/step; the sim node's stepping on_request and
    ticks_per_step one control period), so that a step takes the sim's work for one period instead of waiting for
    a real-time sim. Needs use_sim_time and sim_services."""

    def __post_init__(self) -> None:
        convert_fields(self)
        for name in ('timeout_s', 'at_rest_joint_speed', 'goal_match_tolerance'):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f'RosEnvConfig.{name} must be a finite number > 0, got {value}')
        if not self.reward_kind:
            raise ValueError('RosEnvConfig.reward_kind must name a reward stream, e.g. latent_goal')
        if self.stepping not in STEPPING:
            raise ValueError(f'RosEnvConfig.stepping must be one of {", ".join(STEPPING)}, got {self.stepping!r}')
        if self.stepped and not (self.use_sim_time and self.sim_services):
            raise ValueError(f"RosEnvConfig.stepping 'on_request' steps the sim on sim time: it needs use_sim_time and "
                             f"sim_services true, got use_sim_time {self.use_sim_time}, sim_services "
                             f"{self.sim_services}")

    @property
    def stepped(self) -> bool:
        return self.stepping == 'on_request'


class StreamTimeout(RuntimeError):
    """A message the env waits for did not arrive in time; the message is one line naming the topic."""


def stream_timeout_message(what: str, topic: str, after_ns: int | None, newest_ns: int | None,
                           timeout_s: float) -> str:
    """One line: which topic went quiet, for which stamp the env waited and what it last heard."""
    wanted = '' if after_ns is None else f' stamped at or after {after_ns / NS_PER_S:.3f} s'
    newest = 'nothing yet' if newest_ns is None else f'the newest is stamped {newest_ns / NS_PER_S:.3f} s'
    return f'{what}: no message on {topic}{wanted} within {timeout_s:g} s ({newest}); is its node running?'


class StampedStream(Generic[Value]):
    """The newest messages of one stream by stamp, at most `capacity` of them (the oldest go first)."""

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._items: OrderedDict[int, Value] = OrderedDict()

    def add(self, stamp_ns: int, value: Value) -> None:
        self._items[stamp_ns] = value
        self._items.move_to_end(stamp_ns)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, stamp_ns: int) -> Value | None:
        return self._items.get(stamp_ns)

    def newest_stamp(self) -> int | None:
        return max(self._items) if self._items else None

    def stamps_from(self, at_or_after_ns: int) -> list[int]:
        return sorted(stamp for stamp in self._items if stamp >= at_or_after_ns)

    def clear(self) -> None:
        self._items.clear()


def first_common_stamp(first: StampedStream, second: StampedStream, at_or_after_ns: int) -> int | None:
    """The earliest stamp at or after at_or_after_ns that both streams hold, or None while there is none."""
    common = set(first.stamps_from(at_or_after_ns)).intersection(second.stamps_from(at_or_after_ns))
    return min(common) if common else None


# Stamps are whole nanoseconds of ticks (3 ticks of 30 Hz are 99,999,999 ns, one 10 Hz period is 100,000,000 ns):
# a frame this much short of a full period after the action still answers it.
STAMP_SLACK_NS = 1_000_000


def step_due_ns(action_ns: int, control_hz: float) -> int:
    """The earliest frame stamp a step may answer with: one control period after the action was sent (on the node's
    clock), as TrayGoalEnv runs one control period of ticks per step."""
    return action_ns + int(round(NS_PER_S / control_hz)) - STAMP_SLACK_NS


def check_sim_period(start_ns: int, end_ns: int, control_hz: float) -> None:
    """ValueError unless a /sim/step period (start to end stamp) is one control period, to the ticks' rounding."""
    period_ns = int(round(NS_PER_S / control_hz))
    if abs((end_ns - start_ns) - period_ns) > STAMP_SLACK_NS:
        raise ValueError(f'/sim/step ran {(end_ns - start_ns) / 1e6:.1f} ms of sim time per request, but the env\'s '
                         f'control period is {period_ns / 1e6:.1f} ms: set the sim node\'s ticks_per_step to one '
                         f'control period (graph_parameters does)')


def reward_matches_goal(reported_distance: float, latent: np.ndarray, goal: np.ndarray, tolerance: float) -> bool:
    """Whether a reward's reported |z - z_g| is the distance of this frame's latent to this goal: the reward node
    scores against the goal the env holds (and not against the one before it)."""
    if np.shape(latent) != np.shape(goal):
        return False
    distance = float(np.linalg.norm(np.asarray(latent, np.float64) - np.asarray(goal, np.float64)))
    return abs(distance - float(reported_distance)) <= tolerance * max(1.0, distance)


def at_rest(velocities: np.ndarray, speed_limit: float) -> bool:
    """Whether every joint moves slower than speed_limit (rad/s)."""
    velocities = np.asarray(velocities, float)
    return velocities.size > 0 and bool(np.all(np.abs(velocities) < speed_limit))


def caught_up(newest_stamps: list[int | None], sim_ns: int) -> bool:
    """Whether every watched stream (its newest stamp) has delivered the sim's newest period, which ended at sim_ns:
    a stepped sim publishes nothing more until asked, so a wait that is not over by then needs another period."""
    return all(stamp is not None and stamp >= sim_ns for stamp in newest_stamps)


def periods_allowed(timeout_s: float, control_hz: float) -> int:
    """The periods one wait may ask a stepped sim for: timeout_s of sim time, as a free sim at real time runs in the
    wall time the wait is allowed."""
    return max(1, math.ceil(timeout_s * control_hz))
