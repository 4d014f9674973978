"""SimRunner: ticks the tray world at a fixed rate, runs the scripted modes, renders and reports ground truth.

Each tick: apply a pending reset, advance the running script by one step, move the arm towards its goal, run
physics_hz / tick_rate_hz physics steps, read the ground truth, and render (unless render=False).
A tick's stamp is the simulated time at its end: stamp_ns = tick * tick_period_ns, ticks counting from 1.

The sim node ticks either on a timer (stepping 'free', paced by real_time_factor) or when asked (stepping
'on_request': SimRunner.advance runs one control period of ticks, as fast as it can, and renders its last tick).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssl_robot.sim.arm import JointStates
from ssl_robot.sim.behaviours import (MOTION_BEHAVIOURS, GraspEvent, Script, ScriptContext, grasp_collection_attempt,
                                      grasp_collection_episode, graspable_objects, motion_episode,
                                      within_reach)
from ssl_robot.sim.cameras import Camera, CameraFrame, camera_pose, randomized_camera
from ssl_robot.sim.config import SimConfig
from ssl_robot.sim.world import GripperState, ObjectState, TrayWorld

__all__ = ['CameraFrame', 'EpisodeEvent', 'GraspEvent', 'GripperState', 'JointStates', 'ObjectState', 'SimRunner',
           'STEPPING_MODES', 'TickOutput', 'check_stepping']

UNIT_QUATERNION_TOLERANCE = 1e-3
STEPPING_MODES = ('free', 'on_request')
"""How the sim node ticks: on a timer at its real-time factor, or a period of ticks_per_step ticks per request."""


@dataclass
class EpisodeEvent:
    episode: int
    seed: int
    mode: str
    stamp_ns: int
    behaviour: str
    rig: str = ''
    """The camera rig's name (or file) in sim/rigs/."""
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each scene camera's pose in this episode (ssl_robot.sim.cameras.camera_pose), drawn per episode when the
    config randomizes the cameras."""


@dataclass
class TickOutput:
    tick: int
    stamp_ns: int
    scene: dict[str, CameraFrame]          # scene cameras in config order; empty when not rendered
    object_camera: CameraFrame | None      # None when not rendered
    joints: JointStates
    gripper: GripperState
    objects: list[ObjectState]
    contacts: list[tuple[str, str]]
    events: list[GraspEvent | EpisodeEvent] = field(default_factory=list)
    keyframes: tuple[str, ...] = ()        # names of the event stamps this tick provides (s_pre, o, s_post)


def episode_seed(runner_seed: int, episode: int) -> int:
    """The seed of episode `episode` of a runner seeded with `runner_seed` (deterministic, well spread)."""
    return int(np.random.SeedSequence([runner_seed, episode]).generate_state(1)[0])


def _check_integer(value: Any, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f'{what} must be an integer >= {minimum}, got {value!r}')


def check_stepping(stepping: Any, ticks_per_step: Any) -> None:
    """ValueError naming the bad value unless stepping is one of STEPPING_MODES and ticks_per_step an integer >= 1."""
    if stepping not in STEPPING_MODES:
        raise ValueError(f'stepping must be one of {", ".join(STEPPING_MODES)}, got {stepping!r}')
    _check_integer(ticks_per_step, 1, 'ticks_per_step')


def _vector(value: Any, length: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be {length} numbers, got {value!r}') from None
    if array.shape != (length,):
        raise ValueError(f'{what} must be {length} numbers, got {value!r}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{what} must be finite, got {array.tolist()}')
    return array


class SimRunner:
    """The simulation loop behind the sim node and `ssl-robot collect`.

    Modes: 'idle' runs only external commands and requested grasps; 'grasp' repeats Grasp2Vec collection
    attempts, attempts_per_episode per tray reset (fewer if the tray empties); 'motion' runs one scripted
    behaviour (reach, push or grasp_lift_place, drawn from the episode seed) per reset. Every reset emits an
    EpisodeEvent, the first one on the first tick.
    """

    MODES = ('idle', 'grasp', 'motion')

    def __init__(self, config: SimConfig, mode: str = 'idle', seed: int = 0, attempts_per_episode: int = 5) -> None:
        if mode not in self.MODES:
            raise ValueError(f'unknown mode {mode!r}; known: {", ".join(self.MODES)}')
        _check_integer(seed, 0, 'seed')
        _check_integer(attempts_per_episode, 1, 'attempts_per_episode')
        self.config = config
        self.mode = mode
        self.seed = int(seed)
        self.attempts_per_episode = attempts_per_episode
        self.tick_period_ns = int(round(1e9 / config.tick_rate_hz))
        self.episodes_completed = 0
        self.world = TrayWorld(config)
        self._scene_cameras = [Camera(self.world.client, spec) for spec in config.cameras]
        self._object_camera = Camera(self.world.client, config.object_camera)
        self._tick = 0
        self._episode = -1
        self._events: list[GraspEvent | EpisodeEvent] = []
        self._context = ScriptContext(self.world, self._current_stamp_ns, self._events.append)
        self._script: Script[Any] | None = None
        self._pending_seed: int | None = episode_seed(self.seed, 0)
        self._pending_grasp: Script[GraspEvent] | None = None   # starts after a pending reset

    # ------------------------------------------------------------------------------------------------ ticking

    def _current_stamp_ns(self) -> int:
        return (self._tick + 1) * self.tick_period_ns

    def tick(self, render: bool = True) -> TickOutput:
        """Advance one tick; render the cameras unless render=False (physics and ground truth only).

        A tick whose stamp a script records for an event (a keyframe) is always rendered."""
        if self.world is None:
            raise RuntimeError('the runner is closed')
        if self._pending_seed is not None:
            self._start_episode(self._pending_seed)
        if self._pending_grasp is not None:
            self._script, self._pending_grasp = self._pending_grasp, None
        if self._script is not None:
            try:
                next(self._script)
            except StopIteration:
                self._script = None
                self._script_finished()
        world = self.world
        world.arm.advance()
        world.step_physics()
        world.update()
        self._tick += 1
        scene: dict[str, CameraFrame] = {}
        object_frame = None
        keyframes = tuple(self._context.keyframes)
        self._context.keyframes.clear()
        if render or keyframes:
            scene = {camera.spec.name: camera.render(world.segmentation_lut) for camera in self._scene_cameras}
            object_frame = self._object_camera.render(world.segmentation_lut)
        events = list(self._events)
        self._events.clear()
        return TickOutput(tick=self._tick, stamp_ns=self._tick * self.tick_period_ns, scene=scene,
                          object_camera=object_frame, joints=world.arm.joint_states(),
                          gripper=world.gripper_state(), objects=world.object_states, contacts=world.contacts,
                          events=events, keyframes=keyframes)

    def advance(self, ticks: int) -> list[TickOutput]:
        """One period of a stepped sim: `ticks` ticks, of which only the last renders (and any keyframe), as an env
        that steps TrayWorld for a control period and then looks."""
        _check_integer(ticks, 1, 'ticks')
        return [self.tick(render=done == ticks) for done in range(1, ticks + 1)]

    def _start_episode(self, seed: int) -> None:
        if self.mode == 'idle' and self._episode >= 0:
            self.episodes_completed += 1   # in idle mode an episode lasts until the next reset
        self._pending_seed = None
        self._script = None
        self._episode += 1
        self.world.reset(seed)
        self._context.rng = np.random.default_rng([seed, 1])
        bounds = self.config.camera_randomization
        if bounds.active:
            # A stream of its own, so that randomizing the cameras leaves the behaviours' draws as they were.
            camera_rng = np.random.default_rng([seed, 2])
            self._scene_cameras = [Camera(self.world.client, randomized_camera(spec, bounds, camera_rng))
                                   for spec in self.config.cameras]
        if self.mode == 'grasp':
            behaviour = 'grasp_collection'
            self._script = grasp_collection_episode(self._context, self.attempts_per_episode)
        elif self.mode == 'motion':
            behaviour = MOTION_BEHAVIOURS[int(self._context.rng.integers(len(MOTION_BEHAVIOURS)))]
            self._script = motion_episode(self._context, behaviour)
        else:
            behaviour = 'idle'
        self._events.append(EpisodeEvent(episode=self._episode, seed=seed, mode=self.mode,
                                         stamp_ns=self._current_stamp_ns(), behaviour=behaviour, rig=self.config.rig,
                                         cameras={camera.spec.name: camera_pose(camera.spec)
                                                  for camera in self._scene_cameras}))

    def _script_finished(self) -> None:
        if self.mode != 'idle':
            self.episodes_completed += 1
            self._pending_seed = episode_seed(self.seed, self._episode + 1)

    # ----------------------------------------------------------------------------------------------- commands

    def _check_arm_free(self, what: str) -> None:
        if self.mode != 'idle':
            raise RuntimeError(f'{what} is not accepted in {self.mode!r} mode: a script drives the arm '
                               f'(use mode idle for external control)')
        if self._script is not None or self._pending_grasp is not None:
            raise RuntimeError(f'{what} is not accepted while a scripted grasp drives the arm; '
                               f'wait for its GraspEvent')

    def command_ee_target(self, position: Any, orientation_xyzw: Any) -> None:
        """Send the TCP towards a pose (moves at max_tcp_speed_mps). Idle mode only, no grasp running."""
        position = _vector(position, 3, 'ee target position')
        orientation = _vector(orientation_xyzw, 4, 'ee target orientation_xyzw')
        norm = float(np.linalg.norm(orientation))
        if abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE:
            raise ValueError(f'ee target orientation_xyzw must be a unit quaternion, got norm {norm:.6f}')
        if not self.config.in_workspace(position):
            raise ValueError(f'ee target position {position.tolist()} is outside the workspace '
                             f'{list(self.config.workspace_min)}..{list(self.config.workspace_max)}')
        problem = self.world.arm.reach_problem(tuple(position), tuple(orientation / norm))
        if problem:
            raise ValueError(f'ee target position {position.tolist()}: {problem}')
        self._check_arm_free('command_ee_target')
        self.world.arm.set_goal(position, orientation / norm)

    def command_gripper(self, closed: bool) -> None:
        if not isinstance(closed, (bool, np.bool_)):
            raise ValueError(f'command_gripper: closed must be a bool, got {closed!r}')
        self._check_arm_free('command_gripper')
        self.world.arm.set_gripper(bool(closed))

    def request_reset(self, seed: int | None = None) -> None:
        """Respawn the objects (and send the arm home) at the next tick. None = the next episode's seed.

        A reset ends the running episode and stops its script (a grasp in progress emits no GraspEvent). In idle
        mode the ended episode counts as completed; in grasp and motion modes an interrupted one does not.
        """
        if seed is not None:
            _check_integer(seed, 0, 'reset seed')
        self._pending_grasp = None
        self._pending_seed = int(seed) if seed is not None else episode_seed(self.seed, self._episode + 1)

    def request_grasp(self, xy: tuple[float, float] | None = None) -> None:
        """Run one grasp-collection attempt (idle mode) at tray position xy, or at a random object if None.

        The result arrives as a GraspEvent in a later tick's events.
        """
        if xy is not None:
            xy = tuple(_vector(xy, 2, 'grasp xy').tolist())
            problem = self.grasp_problem(xy)
            if problem:
                raise ValueError(problem)
        self._check_arm_free('request_grasp')
        self._pending_grasp = grasp_collection_attempt(self._context, xy)

    def grasp_problem(self, xy: tuple[float, float]) -> str | None:
        """Why a top-down grasp at tray position xy cannot be requested (outside the tray, out of reach), or None."""
        half = self.config.tray_inner_half_extent_m
        centre = self.config.tray_position
        if any(abs(xy[k] - centre[k]) > half for k in (0, 1)):
            return f'grasp xy {list(xy)} is outside the tray (centre {list(centre[:2])}, half extent {half} m)'
        if not within_reach(self._context, xy):
            return f'grasp xy {list(xy)} is out of the arm\'s reach for a top-down grasp'
        return None

    def graspable_objects(self) -> list[int]:
        """Indices of the objects lying in the tray within the arm's top-down reach (those a grasp at xy None picks
        from)."""
        return graspable_objects(self._context)

    # ------------------------------------------------------------------------------------------------ closing

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None

    def __enter__(self) -> SimRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
