"""The tray world: one PyBullet DIRECT client holding the floor, tray, arm and a seeded set of objects.

It steps physics, keeps the grasp assist constraint, and reads back the ground truth once per tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from ssl_robot.sim.arm import GRIPPER_BASE_LINK, GRIPPER_LINKS, LEFT_FINGER_LINKS, RIGHT_FINGER_LINKS, Arm
from ssl_robot.sim.config import ObjectSpec, SimConfig

FLOOR_HALF_EXTENT_M = 5.0
PEDESTAL_HALF_WIDTH_M = 0.12
OBJECT_FRICTION = 1.0
# Strong enough to carry any object of the sets at the arm's speeds, weak enough not to fling it on release.
ASSIST_MAX_FORCE_N = 100.0
# The assist only forms a grasp while the fingers are closing: a gripper that was already closed when it met
# an object (pushing it) does not pick it up.
ASSIST_CLOSING_WINDOW_S = 1.0
SETTLE_CHECK_STEPS = 24
PARK_DEPTH_M = -1.0   # parked objects sit this far apart below the floor


@dataclass
class ObjectState:
    index: int
    name: str
    position: tuple[float, float, float]
    orientation_xyzw: tuple[float, float, float, float]
    lifted: bool
    in_tray: bool
    touching_gripper: bool


@dataclass
class GripperState:
    opening_m: float
    opening_rate_mps: float
    grip_force_n: float          # force the finger motors apply: the configured force when closed, else 0
    closed_cmd: bool
    held_object: int | None
    tcp_position_m: tuple[float, float, float]   # where the tool centre point is (world frame)


@dataclass
class _Footprint:
    """An object's axis-aligned box in its own frame: centre offset from the body origin and half extents."""

    center: np.ndarray
    half_extents: np.ndarray


@dataclass
class _Spawned:
    spec: ObjectSpec
    body: int
    footprint: _Footprint


class TrayWorld:
    """Floor, tray, arm on a pedestal and the objects of the current episode, in a private physics client."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.client = pybullet.connect(pybullet.DIRECT)
        try:
            self._build_static_scene()
        except Exception:
            pybullet.disconnect(self.client)
            raise
        self.objects: list[_Spawned] = []
        self._footprints: dict[str, _Footprint] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._assist_constraint: int | None = None
        self._assist_object: int | None = None
        self._closed_ticks = 0
        self._assist_window_ticks = int(round(ASSIST_CLOSING_WINDOW_S * config.tick_rate_hz))
        self.object_states: list[ObjectState] = []
        self.contacts: list[tuple[str, str]] = []
        self.held_object: int | None = None
        self.segmentation_lut = np.full(1, -1, np.int32)
        self._body_names = dict(self.static_names)

    def _build_static_scene(self) -> None:
        config, client = self.config, self.client
        pybullet.setTimeStep(1.0 / config.physics_hz, physicsClientId=client)
        pybullet.setGravity(0.0, 0.0, -config.gravity_mps2, physicsClientId=client)
        floor_shape = pybullet.createCollisionShape(pybullet.GEOM_PLANE, physicsClientId=client)
        floor_visual = pybullet.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=[FLOOR_HALF_EXTENT_M, FLOOR_HALF_EXTENT_M, 0.001],
            visualFramePosition=[0.0, 0.0, -0.001], rgbaColor=config.floor_rgba, physicsClientId=client)
        self.floor = pybullet.createMultiBody(0.0, floor_shape, floor_visual, physicsClientId=client)
        height = config.arm_base_position[2]
        self.static_names = {self.floor: 'floor'}
        if height > 0:
            half = [PEDESTAL_HALF_WIDTH_M, PEDESTAL_HALF_WIDTH_M, height / 2.0]
            pedestal = pybullet.createMultiBody(
                0.0, pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half, physicsClientId=client),
                pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, rgbaColor=[0.3, 0.3, 0.32, 1.0],
                                           physicsClientId=client),
                basePosition=[config.arm_base_position[0], config.arm_base_position[1], height / 2.0],
                physicsClientId=client)
            self.static_names[pedestal] = 'pedestal'
        tray_path = Path(pybullet_data.getDataPath()) / config.tray_urdf
        self.tray = pybullet.loadURDF(str(tray_path), list(config.tray_position), useFixedBase=True,
                                      physicsClientId=client)
        self.static_names[self.tray] = 'tray'
        self.arm = Arm(client, config)

    # ------------------------------------------------------------------------------------------- episodes

    def reset(self, seed: int) -> None:
        """Respawn num_objects objects drawn by `seed`, send the arm home, and let everything settle."""
        config = self.config
        self._release_assist()
        for spawned in self.objects:
            pybullet.removeBody(spawned.body, physicsClientId=self.client)
        self.objects = []
        self.arm.teleport(config.home)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(config.objects), size=config.num_objects, replace=False)
        placed: list[tuple[np.ndarray, float]] = []
        for spec in (config.objects[i] for i in chosen):
            footprint = self._footprint(spec)
            radius = float(np.max(footprint.half_extents[:2]))
            yaw = float(rng.uniform(-math.pi, math.pi))
            xy = self._free_spot(rng, radius, placed)
            placed.append((xy, radius))
            orientation = pybullet.getQuaternionFromEuler([0.0, 0.0, yaw])
            # Place the footprint's centre (not the body origin) at xy, its bottom spawn_drop_height_m up.
            offset = np.array(pybullet.getMatrixFromQuaternion(orientation)).reshape(3, 3) @ footprint.center
            z = config.tray_floor_z + config.spawn_drop_height_m + footprint.half_extents[2] - footprint.center[2]
            position = [xy[0] - offset[0], xy[1] - offset[1], z]
            self.objects.append(_Spawned(spec, self._create_body(spec, position, orientation), footprint))
        lut = np.full(max([s.body for s in self.objects] + [self.arm.body, self.tray]) + 2, -1, np.int32)
        for index, spawned in enumerate(self.objects):
            lut[spawned.body] = index
        self.segmentation_lut = lut   # lut[-1] == -1 maps pybullet's background value -1 to -1
        self._body_names = {**self.static_names, **{s.body: s.spec.name for s in self.objects}}
        self._settle()
        self.update()

    def _free_spot(self, rng: np.random.Generator, radius: float, placed: list[tuple[np.ndarray, float]]
                   ) -> np.ndarray:
        """A spawn point whose footprint circle clears those already placed (or, failing that, any point)."""
        half = self.config.spawn_half_extent_m
        centre = np.array(self.config.tray_position[:2])
        candidate = centre
        for _ in range(100):
            candidate = centre + rng.uniform(-half, half, size=2)
            if all(np.linalg.norm(candidate - xy) >= radius + r for xy, r in placed):
                break
        return candidate

    def _settle(self) -> None:
        steps = int(round(self.config.settle_time_s * self.config.physics_hz))
        for step in range(1, steps + 1):
            pybullet.stepSimulation(physicsClientId=self.client)
            if step % SETTLE_CHECK_STEPS == 0 and all(
                    self.object_speed(i) < self.config.still_speed_mps for i in range(len(self.objects))):
                break

    def _footprint(self, spec: ObjectSpec) -> _Footprint:
        if spec.name not in self._footprints:
            body = self._create_body(spec, [0.0, 0.0, -10.0], [0.0, 0.0, 0.0, 1.0])
            low, high = (np.array(v) for v in pybullet.getAABB(body, physicsClientId=self.client))
            self._footprints[spec.name] = _Footprint(center=(low + high) / 2.0 - np.array([0.0, 0.0, -10.0]),
                                                     half_extents=(high - low) / 2.0)
            pybullet.removeBody(body, physicsClientId=self.client)
        return self._footprints[spec.name]

    def _create_body(self, spec: ObjectSpec, position: list[float], orientation: tuple[float, ...]) -> int:
        client = self.client
        if spec.urdf is not None:
            body = pybullet.loadURDF(str(Path(pybullet_data.getDataPath()) / spec.urdf), position, orientation,
                                     globalScaling=spec.scale, physicsClientId=client)
        else:
            if spec.name not in self._shapes:
                self._shapes[spec.name] = self._primitive_shapes(spec)
            collision, visual = self._shapes[spec.name]
            body = pybullet.createMultiBody(spec.mass_kg, collision, visual, position, orientation,
                                            physicsClientId=client)
        pybullet.changeDynamics(body, -1, lateralFriction=OBJECT_FRICTION, physicsClientId=client)
        return body

    def _primitive_shapes(self, spec: ObjectSpec) -> tuple[int, int]:
        size = [s * spec.scale for s in spec.size]
        if spec.shape == 'box':
            geometry = dict(shapeType=pybullet.GEOM_BOX, halfExtents=size)
            visual_geometry = geometry
        elif spec.shape == 'cylinder':
            geometry = dict(shapeType=pybullet.GEOM_CYLINDER, radius=size[0], height=size[1])
            visual_geometry = dict(shapeType=pybullet.GEOM_CYLINDER, radius=size[0], length=size[1])
        else:
            geometry = dict(shapeType=pybullet.GEOM_SPHERE, radius=size[0])
            visual_geometry = geometry
        collision = pybullet.createCollisionShape(**geometry, physicsClientId=self.client)
        visual = pybullet.createVisualShape(**visual_geometry, rgbaColor=spec.rgba, physicsClientId=self.client)
        return collision, visual

    # -------------------------------------------------------------------------------------------- stepping

    def step_physics(self) -> None:
        for _ in range(self.config.physics_steps_per_tick):
            pybullet.stepSimulation(physicsClientId=self.client)

    def update(self) -> None:
        """Read contacts and object poses, then attach or release the grasp assist constraint."""
        body_index = {s.body: i for i, s in enumerate(self.objects)}
        pairs: set[tuple[str, str]] = set()
        left_touch: set[int] = set()
        right_touch: set[int] = set()
        gripper_touch: set[int] = set()
        supported: set[int] = set()   # objects touching something other than the gripper
        for contact in pybullet.getContactPoints(physicsClientId=self.client):
            body_a, body_b, link_a, link_b = contact[1:5]
            if body_b == self.arm.body:
                body_a, body_b, link_a, link_b = body_b, body_a, link_b, link_a
            name_a, name_b = self._contact_name(body_a, link_a), self._contact_name(body_b, link_b)
            if name_a != name_b:
                pairs.add((name_a, name_b) if name_a < name_b else (name_b, name_a))
            if body_a == self.arm.body and link_a in GRIPPER_LINKS and body_b in body_index:
                index = body_index[body_b]
                gripper_touch.add(index)
                if link_a in LEFT_FINGER_LINKS:
                    left_touch.add(index)
                elif link_a in RIGHT_FINGER_LINKS:
                    right_touch.add(index)
            else:
                supported.update(body_index[b] for b in (body_a, body_b) if b in body_index)
        self.contacts = sorted(pairs)
        pinched = left_touch & right_touch if self.arm.closed_cmd else set()
        self._update_assist(pinched)
        if self.config.grasp_assist:
            self.held_object = self._assist_object
        else:
            self.held_object = min(pinched) if pinched else None
        self.object_states = [self._object_state(i, s, gripper_touch, supported)
                              for i, s in enumerate(self.objects)]

    def _contact_name(self, body: int, link: int) -> str:
        if body == self.arm.body:
            return 'gripper' if link in GRIPPER_LINKS else 'arm'
        return self._body_names[body]

    def _object_state(self, index: int, spawned: _Spawned, gripper_touch: set[int], supported: set[int]
                      ) -> ObjectState:
        config = self.config
        position, orientation = pybullet.getBasePositionAndOrientation(spawned.body, physicsClientId=self.client)
        bottom = pybullet.getAABB(spawned.body, physicsClientId=self.client)[0][2]
        # Lifted means carried: high up, held or touched by the gripper, resting on nothing else (a falling
        # object is not lifted).
        carried = index in gripper_touch or index == self.held_object
        lifted = bottom > config.tray_floor_z + config.lifted_threshold_m and carried and index not in supported
        centre = self._center(spawned, position, orientation)
        inside = all(abs(centre[k] - config.tray_position[k]) <= config.tray_inner_half_extent_m for k in (0, 1))
        return ObjectState(index=index, name=spawned.spec.name, position=position, orientation_xyzw=orientation,
                           lifted=lifted, in_tray=inside and not lifted, touching_gripper=index in gripper_touch)

    # ----------------------------------------------------------------------------------------- grasp assist

    def _update_assist(self, pinched: set[int]) -> None:
        self._closed_ticks = self._closed_ticks + 1 if self.arm.closed_cmd else 0
        if not self.arm.closed_cmd:
            self._release_assist()
        elif self.config.grasp_assist and self._assist_constraint is None and pinched \
                and self._closed_ticks <= self._assist_window_ticks:
            self._attach(min(pinched))

    def _attach(self, index: int) -> None:
        """Fix object `index` to the gripper base in its current relative pose."""
        client = self.client
        link = pybullet.getLinkState(self.arm.body, GRIPPER_BASE_LINK, physicsClientId=client)
        # Constraint frames are relative to the link's centre of mass frame (link state entries 0 and 1).
        inverse_position, inverse_orientation = pybullet.invertTransform(link[0], link[1])
        object_position, object_orientation = pybullet.getBasePositionAndOrientation(
            self.objects[index].body, physicsClientId=client)
        relative_position, relative_orientation = pybullet.multiplyTransforms(
            inverse_position, inverse_orientation, object_position, object_orientation)
        self._assist_constraint = pybullet.createConstraint(
            self.arm.body, GRIPPER_BASE_LINK, self.objects[index].body, -1, pybullet.JOINT_FIXED, [0.0, 0.0, 0.0],
            parentFramePosition=relative_position, childFramePosition=[0.0, 0.0, 0.0],
            parentFrameOrientation=relative_orientation, physicsClientId=client)
        pybullet.changeConstraint(self._assist_constraint, maxForce=ASSIST_MAX_FORCE_N, physicsClientId=client)
        self._assist_object = index

    def _release_assist(self) -> None:
        if self._assist_constraint is not None:
            pybullet.removeConstraint(self._assist_constraint, physicsClientId=self.client)
        self._assist_constraint = None
        self._assist_object = None

    # ------------------------------------------------------------------------------------- object geometry

    def object_center(self, index: int) -> np.ndarray:
        """World position of the centre of the object's own bounding box."""
        spawned = self.objects[index]
        return self._center(spawned, *pybullet.getBasePositionAndOrientation(spawned.body,
                                                                             physicsClientId=self.client))

    @staticmethod
    def _center(spawned: _Spawned, position: tuple[float, ...], orientation: tuple[float, ...]) -> np.ndarray:
        rotation = np.array(pybullet.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        return np.array(position) + rotation @ spawned.footprint.center

    def park(self, index: int) -> None:
        """Take object `index` out of the scene: frozen (static) under the floor, out of every camera's view."""
        body = self.objects[index].body
        pybullet.changeDynamics(body, -1, mass=0.0, physicsClientId=self.client)
        pybullet.resetBasePositionAndOrientation(body, [0.0, 0.0, PARK_DEPTH_M * (index + 1)], [0.0, 0.0, 0.0, 1.0],
                                                 physicsClientId=self.client)

    def place_object(self, index: int, xy: tuple[float, float]) -> None:
        """Move object `index` (upright, at rest) so that its footprint's centre is at xy, at its current height."""
        spawned = self.objects[index]
        position, orientation = pybullet.getBasePositionAndOrientation(spawned.body, physicsClientId=self.client)
        offset = self._center(spawned, position, orientation) - np.array(position)
        target = [xy[0] - offset[0], xy[1] - offset[1], position[2]]
        pybullet.resetBasePositionAndOrientation(spawned.body, target, orientation, physicsClientId=self.client)
        pybullet.resetBaseVelocity(spawned.body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], physicsClientId=self.client)

    def object_bounds(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The object's world axis-aligned bounding box (low corner, high corner)."""
        low, high = pybullet.getAABB(self.objects[index].body, physicsClientId=self.client)
        return np.array(low), np.array(high)

    def object_speed(self, index: int) -> float:
        linear, _ = pybullet.getBaseVelocity(self.objects[index].body, physicsClientId=self.client)
        return float(np.linalg.norm(linear))

    def narrow_axis_yaw(self, index: int) -> float:
        """Yaw in (-pi/2, pi/2] of the object's narrower horizontal side, the direction to close the fingers."""
        spawned = self.objects[index]
        _, orientation = pybullet.getBasePositionAndOrientation(spawned.body, physicsClientId=self.client)
        rotation = np.array(pybullet.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        # Of the object's three axes, take the two most horizontal ones and close across the shorter one.
        horizontal = np.linalg.norm(rotation[:2, :], axis=0)
        axes = np.argsort(horizontal)[1:]
        narrow = min(axes, key=lambda a: spawned.footprint.half_extents[a])
        yaw = math.atan2(rotation[1, narrow], rotation[0, narrow])
        return (yaw + math.pi / 2) % math.pi - math.pi / 2

    def object_under(self, xy: tuple[float, float], margin_m: float = 0.01) -> int | None:
        """The highest object whose world bounding box covers xy, if any."""
        best, best_top = None, -math.inf
        for index, spawned in enumerate(self.objects):
            low, high = pybullet.getAABB(spawned.body, physicsClientId=self.client)
            if low[0] - margin_m <= xy[0] <= high[0] + margin_m and low[1] - margin_m <= xy[1] <= high[1] + margin_m \
                    and high[2] > best_top:
                best, best_top = index, high[2]
        return best

    def gripper_state(self) -> GripperState:
        opening, rate = self.arm.opening()
        return GripperState(opening_m=opening, opening_rate_mps=rate,
                            grip_force_n=self.config.gripper_force_n if self.arm.closed_cmd else 0.0,
                            closed_cmd=self.arm.closed_cmd, held_object=self.held_object,
                            tcp_position_m=tuple(float(v) for v in self.arm.tcp_pose()[0]))

    def close(self) -> None:
        if pybullet.isConnected(self.client):
            pybullet.disconnect(self.client)
