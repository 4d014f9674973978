"""Scripted behaviours, written as generators that yield once per tick.

The runner advances the running script once at the start of every tick (before physics), so the cameras keep
streaming while a grasp or a motion runs. A script sets arm and gripper goals, yields, and looks at the
world state again on the next tick; sub-steps compose with `yield from`, and a script's result is its
return value. Stamps recorded by a script (s_pre, o, s_post) are the stamp of the tick during which the script
saw the condition hold; the script then yields without new goals, so that tick's images show that state.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Generator, TypeVar

import numpy as np

from ssl_robot.sim.config import Pose, rpy_to_quaternion
from ssl_robot.sim.world import TrayWorld

T = TypeVar('T')
Script = Generator[None, None, T]

GRIPPER_CLOSE_S = 0.5
GRIPPER_OPEN_S = 0.4
SETTLE_TIMEOUT_S = 2.0
PUSH_HEIGHT_M = 0.03           # TCP above the tray floor while pushing: the fingertips skim the floor
PUSH_CLEARANCE_M = 0.05        # start this far outside the object's footprint
PUSH_THROUGH_M = 0.08          # and end this far past its centre
PLACE_CLEARANCE_M = 0.01       # release a placed object this high above the tray floor


@dataclass
class GraspEvent:
    attempt: int
    success: bool
    object_index: int | None
    object_name: str | None
    target_xy: tuple[float, float]
    s_pre_ns: int
    o_ns: int | None
    s_post_ns: int
    reason: str


@dataclass
class GraspOutcome:
    success: bool
    object_index: int | None
    reason: str


class ScriptContext:
    """What scripts see: the world, a per-episode random generator, the clock and an event sink."""

    def __init__(self, world: TrayWorld, clock_ns: Callable[[], int], emit: Callable[[GraspEvent], None]) -> None:
        self.world = world
        self.arm = world.arm
        self.config = world.config
        self.now_ns = clock_ns
        self.emit = emit
        self.keyframes: list[str] = []
        self.rng = np.random.default_rng(0)
        self.attempts = itertools.count()
        self.tick_s = 1.0 / world.config.tick_rate_hz

    def mark_keyframe(self, name: str) -> int:
        """The stamp of this tick, which an event will refer to by `name` (s_pre, o, s_post): the runner renders
        this tick even when asked not to, so a recorder that samples frames never misses one."""
        self.keyframes.append(name)
        return self.now_ns()

    def ticks(self, seconds: float) -> int:
        return max(1, int(math.ceil(seconds / self.tick_s)))


def top_down(yaw: float) -> tuple[float, float, float, float]:
    """Gripper pointing straight down, fingers closing along the world direction at angle `yaw`."""
    return rpy_to_quaternion((0.0, math.pi, yaw))


# ------------------------------------------------------------------------------------------------- motions

def move_to(ctx: ScriptContext, position: tuple[float, ...] | np.ndarray,
            orientation: tuple[float, ...] | np.ndarray) -> Script[bool]:
    """Drive the TCP to a pose; True once there, False if it has not arrived within move_timeout_s."""
    ctx.arm.set_goal(position, orientation)
    for _ in range(ctx.ticks(ctx.config.move_timeout_s)):
        yield
        if ctx.arm.at_goal():
            return True
    return False


def move_to_pose(ctx: ScriptContext, pose: Pose) -> Script[bool]:
    return (yield from move_to(ctx, pose.position, pose.orientation_xyzw()))


def hold_still(ctx: ScriptContext, is_still: Callable[[], bool]) -> Script[bool]:
    """Wait (at most SETTLE_TIMEOUT_S) until is_still() holds at the start of a tick."""
    for _ in range(ctx.ticks(SETTLE_TIMEOUT_S)):
        if is_still():
            return True
        yield
    return is_still()


def arm_still(ctx: ScriptContext) -> bool:
    return ctx.arm.tcp_speed() < ctx.config.still_speed_mps


def actuate_gripper(ctx: ScriptContext, closed: bool) -> Script[None]:
    ctx.arm.set_gripper(closed)
    for _ in range(ctx.ticks(GRIPPER_CLOSE_S if closed else GRIPPER_OPEN_S)):
        yield


def go_home(ctx: ScriptContext) -> Script[bool]:
    """Return home and wait there until the arm is still (home is out of the scene cameras' views)."""
    arrived = yield from move_to_pose(ctx, ctx.config.home)
    return arrived and (yield from hold_still(ctx, lambda: arm_still(ctx)))


def random_tray_xy(ctx: ScriptContext) -> np.ndarray:
    half = ctx.config.spawn_half_extent_m
    return np.array(ctx.config.tray_position[:2]) + ctx.rng.uniform(-half, half, size=2)


def within_reach(ctx: ScriptContext, xy: tuple[float, float] | np.ndarray) -> bool:
    """Whether a top-down grasp at xy is reachable: grasp, approach and lift poses alike."""
    config = ctx.config
    heights = (config.min_grasp_height_m, config.approach_height_m, config.lift_height_m)
    return all(ctx.arm.reach_problem((xy[0], xy[1], config.tray_floor_z + h), top_down(0.0)) is None
               for h in heights)


def graspable_objects(ctx: ScriptContext) -> list[int]:
    """Objects lying in the tray within the arm's top-down reach."""
    world = ctx.world
    return [s.index for s in world.object_states if s.in_tray and within_reach(ctx, world.object_center(s.index))]


def random_object(ctx: ScriptContext) -> int | None:
    """A uniformly drawn graspable object, or None when there is none."""
    candidates = graspable_objects(ctx)
    return int(ctx.rng.choice(candidates)) if candidates else None


# -------------------------------------------------------------------------------------------------- grasps

def grasp(ctx: ScriptContext, xy: tuple[float, float]) -> Script[GraspOutcome]:
    """Top-down grasp at xy: approach, descend, close, lift. Success = an object held and lifted.

    The depth and the wrist yaw come from the ground truth of the object under xy (descend grasp_depth_m below
    its top, close across its narrower side); with nothing under xy the gripper goes down to
    min_grasp_height_m and closes on air.
    """
    config, world = ctx.config, ctx.world
    floor = config.tray_floor_z
    target = world.object_under(xy)
    if target is None:
        grasp_z, yaw = floor + config.min_grasp_height_m, 0.0
    else:
        grasp_z = max(floor + config.min_grasp_height_m, world.object_bounds(target)[1][2] - config.grasp_depth_m)
        yaw = world.narrow_axis_yaw(target)
    orientation = top_down(yaw)
    ctx.arm.set_gripper(closed=False)
    if not (yield from move_to(ctx, (xy[0], xy[1], floor + config.approach_height_m), orientation)):
        return GraspOutcome(False, None, 'could not reach the approach pose above the target')
    # The descent may stop short on top of an object; closing there can still catch it.
    yield from move_to(ctx, (xy[0], xy[1], grasp_z), orientation)
    yield from actuate_gripper(ctx, closed=True)
    yield from move_to(ctx, (xy[0], xy[1], floor + config.lift_height_m), orientation)
    held = world.held_object
    if held is None:
        return GraspOutcome(False, None, 'nothing between the fingers after the lift')
    if not world.object_states[held].lifted:
        return GraspOutcome(False, held, 'the held object did not come up with the gripper')
    return GraspOutcome(True, held, 'object held and lifted')


def grasp_collection_attempt(ctx: ScriptContext, xy: tuple[float, float] | None = None) -> Script[GraspEvent]:
    """One Grasp2Vec attempt: s_pre at home, grasp, present to the object camera (o), drop off, s_post at home.

    xy None grasps a random object in the tray. The GraspEvent is emitted and also returned.
    """
    attempt = next(ctx.attempts)
    yield from go_home(ctx)
    s_pre_ns = ctx.mark_keyframe('s_pre')
    yield
    if xy is None:
        target = random_object(ctx)
        xy = tuple(ctx.world.object_center(target)[:2]) if target is not None else None
    if xy is None:
        outcome = GraspOutcome(False, None, 'no object within reach in the tray')
        xy = tuple(ctx.config.tray_position[:2])
    else:
        outcome = yield from grasp(ctx, xy)
    o_ns = None
    if outcome.success:
        o_ns = yield from present(ctx, outcome.object_index)
        if o_ns is None:
            outcome = GraspOutcome(False, outcome.object_index, 'the object was lost before it was presented')
        else:
            yield from move_to_pose(ctx, ctx.config.dropoff)
    yield from actuate_gripper(ctx, closed=False)
    if o_ns is not None:
        # The drop-off is a chute: an object released there leaves the scene.
        ctx.world.park(outcome.object_index)
    yield from go_home(ctx)
    s_post_ns = ctx.mark_keyframe('s_post')
    yield
    name = ctx.world.objects[outcome.object_index].spec.name if outcome.object_index is not None else None
    event = GraspEvent(attempt=attempt, success=outcome.success, object_index=outcome.object_index,
                       object_name=name, target_xy=(float(xy[0]), float(xy[1])), s_pre_ns=s_pre_ns, o_ns=o_ns,
                       s_post_ns=s_post_ns, reason=outcome.reason)
    ctx.emit(event)
    return event


def present(ctx: ScriptContext, index: int) -> Script[int | None]:
    """Hold object `index` still in front of the object camera; the stamp of that tick, or None if dropped."""
    world = ctx.world
    yield from move_to_pose(ctx, ctx.config.presentation)
    still = yield from hold_still(
        ctx, lambda: world.held_object == index and arm_still(ctx)
        and world.object_speed(index) < ctx.config.still_speed_mps)
    if not still:
        return None
    stamp = ctx.mark_keyframe('o')
    yield
    return stamp


def grasp_collection_episode(ctx: ScriptContext, attempts: int) -> Script[None]:
    """Up to `attempts` attempts; the episode ends early once no object within reach is left in the tray."""
    for _ in range(attempts):
        if not graspable_objects(ctx):
            return
        yield from grasp_collection_attempt(ctx)


# ------------------------------------------------------------------------------------------ motion (TCN)
#
# A motion episode ends where its behaviour ends, with the arm still in view: the next reset teleports the arm home.
# A scripted return would retrace the approach, so the episode's last frames would look like its first ones. The
# time-contrastive losses would then push apart frames that show the same pose, and an imitation demonstration cut
# from the episode would end with the arm leaving.

def reach(ctx: ScriptContext) -> Script[None]:
    """Visit 3-5 random points above the tray with random wrist yaws, pausing briefly at each."""
    floor = ctx.config.tray_floor_z
    for _ in range(int(ctx.rng.integers(3, 6))):
        xy = random_tray_xy(ctx)
        point = (xy[0], xy[1], floor + ctx.rng.uniform(0.08, 0.3))
        yield from move_to(ctx, point, top_down(ctx.rng.uniform(-math.pi / 2, math.pi / 2)))
        for _ in range(int(ctx.rng.integers(0, 10))):
            yield


def push(ctx: ScriptContext, target: int) -> Script[None]:
    """Sweep the closed gripper along the floor through object `target` in a random direction."""
    world, config = ctx.world, ctx.config
    heading = ctx.rng.uniform(-math.pi, math.pi)
    direction = np.array([math.cos(heading), math.sin(heading), 0.0])
    centre = world.object_center(target)
    centre[2] = config.tray_floor_z + PUSH_HEIGHT_M
    radius = float(np.max(world.objects[target].footprint.half_extents[:2]))
    start = centre - direction * (radius + PUSH_CLEARANCE_M)
    end = centre + direction * PUSH_THROUGH_M
    orientation = top_down(heading + math.pi / 2)   # fingers side by side across the push direction
    ctx.arm.set_gripper(closed=True)
    above = start + np.array([0.0, 0.0, config.approach_height_m - PUSH_HEIGHT_M])
    yield from move_to(ctx, above, orientation)
    yield from move_to(ctx, start, orientation)
    yield from move_to(ctx, end, orientation)
    yield from move_to(ctx, end + np.array([0.0, 0.0, config.approach_height_m - PUSH_HEIGHT_M]), orientation)


def grasp_lift_place(ctx: ScriptContext, target: int) -> Script[None]:
    """Grasp object `target`, carry it to a random spot in the tray and set it down there."""
    world, config = ctx.world, ctx.config
    outcome = yield from grasp(ctx, tuple(world.object_center(target)[:2]))
    if outcome.success:
        tcp, orientation = ctx.arm.tcp_pose()
        below_tcp = tcp[2] - world.object_bounds(outcome.object_index)[0][2]
        place = random_tray_xy(ctx)
        yield from move_to(ctx, (place[0], place[1], tcp[2]), orientation)
        yield from move_to(ctx, (place[0], place[1], config.tray_floor_z + PLACE_CLEARANCE_M + below_tcp),
                           orientation)
    yield from actuate_gripper(ctx, closed=False)
    tcp, orientation = ctx.arm.tcp_pose()
    yield from move_to(ctx, (tcp[0], tcp[1], config.tray_floor_z + config.approach_height_m), orientation)


MOTION_BEHAVIOURS = ('reach', 'push', 'grasp_lift_place')


def motion_episode(ctx: ScriptContext, behaviour: str) -> Script[None]:
    """Run one motion behaviour; those that handle an object fall back to reach when the tray is empty."""
    target = random_object(ctx) if behaviour != 'reach' else None
    if target is None:
        yield from reach(ctx)
    elif behaviour == 'push':
        yield from push(ctx, target)
    else:
        yield from grasp_lift_place(ctx, target)
