"""Simulation configuration: frozen dataclasses, loaded from sim/scene.yaml, a camera rig and an object set.

The yaml files map one to one onto the dataclass fields below, so a misspelt key is an error (naming the key
and the file) rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from ssl_robot.resources import share_path

Vec3 = tuple[float, float, float]
Vec4 = tuple[float, float, float, float]

PRIMITIVE_SHAPES = ('box', 'cylinder', 'sphere')
# Number of size values each primitive shape takes: box half extents (x, y, z); cylinder radius and
# height; sphere radius.
_SHAPE_SIZE_LEN = {'box': 3, 'cylinder': 2, 'sphere': 1}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _finite(values: tuple[float, ...]) -> bool:
    return all(math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Pose:
    """A gripper pose: tool centre point position (m, world frame) and roll/pitch/yaw in degrees.

    rpy (0, 180, 0) points the gripper straight down, which is what every scripted pose uses by default.
    """

    position: Vec3
    rpy_deg: Vec3 = (0.0, 180.0, 0.0)

    def __post_init__(self) -> None:
        _require(len(self.position) == 3 and _finite(self.position),
                 f'pose position must be 3 finite numbers, got {self.position}')
        _require(len(self.rpy_deg) == 3 and _finite(self.rpy_deg),
                 f'pose rpy_deg must be 3 finite numbers, got {self.rpy_deg}')

    def orientation_xyzw(self) -> Vec4:
        return rpy_to_quaternion(tuple(math.radians(a) for a in self.rpy_deg))


def rpy_to_quaternion(rpy: tuple[float, float, float]) -> Vec4:
    """Fixed-axis roll, pitch, yaw (radians; R = Rz(yaw) Ry(pitch) Rx(roll)) to an (x, y, z, w) quaternion."""
    cr, sr = math.cos(rpy[0] / 2), math.sin(rpy[0] / 2)
    cp, sp = math.cos(rpy[1] / 2), math.sin(rpy[1] / 2)
    cy, sy = math.cos(rpy[2] / 2), math.sin(rpy[2] / 2)
    return (sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


@dataclass(frozen=True)
class CameraSpec:
    """A fixed pinhole camera. fov_deg is the vertical field of view, as in pybullet's projection matrix."""

    name: str
    width: int
    height: int
    fov_deg: float
    eye: Vec3
    target: Vec3
    up: Vec3 = (0.0, 0.0, 1.0)
    near: float = 0.01
    far: float = 5.0

    def __post_init__(self) -> None:
        who = f'camera {self.name!r}'
        _require(bool(self.name), 'camera name must not be empty')
        _require(self.width > 0 and self.height > 0,
                 f'{who}: image size must be positive, got width={self.width} height={self.height}')
        _require(0.0 < self.fov_deg < 180.0, f'{who}: fov_deg must be in (0, 180), got {self.fov_deg}')
        for name in ('eye', 'target', 'up'):
            value = getattr(self, name)
            _require(len(value) == 3 and _finite(value), f'{who}: {name} must be 3 finite numbers, got {value}')
        _require(0.0 < self.near < self.far, f'{who}: need 0 < near < far, got near={self.near} far={self.far}')
        view_dir = np.subtract(self.target, self.eye)
        _require(float(np.linalg.norm(view_dir)) > 1e-6, f'{who}: eye and target coincide at {self.eye}')
        _require(float(np.linalg.norm(np.cross(view_dir, self.up))) > 1e-6 * float(np.linalg.norm(view_dir)),
                 f'{who}: up {self.up} is parallel to the viewing direction')

    def intrinsics(self) -> np.ndarray:
        """3x3 pinhole K of the rendered image, OpenCV convention (pixel centres at integer coordinates)."""
        focal = (self.height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)
        return np.array([[focal, 0.0, (self.width - 1) / 2.0],
                         [0.0, focal, (self.height - 1) / 2.0],
                         [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CameraRandomization:
    """Bounds of the per-episode camera pose draw (ssl_robot.sim.cameras.randomized_camera), for every scene camera:
    the eye moves by an offset drawn uniformly from the ball of radius position_m (the target stays, so the camera
    keeps looking at the tray), the viewing direction then turns by an angle drawn uniformly from [0, aim_deg] about
    a random axis across it, and the vertical field of view changes by a value drawn uniformly from
    [-fov_deg, fov_deg]. All zero: the rig's cameras, unchanged."""

    position_m: float = 0.0
    aim_deg: float = 0.0
    fov_deg: float = 0.0

    def __post_init__(self) -> None:
        for name in ('position_m', 'aim_deg', 'fov_deg'):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0,
                     f'camera_randomization.{name} must be a finite number >= 0, got {value}')
        _require(self.aim_deg < 90.0, f'camera_randomization.aim_deg must be below 90, got {self.aim_deg}')

    @property
    def active(self) -> bool:
        return any((self.position_m, self.aim_deg, self.fov_deg))


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a set: either a URDF (path relative to pybullet_data) or a primitive shape."""

    name: str
    urdf: str | None = None
    shape: str | None = None
    size: tuple[float, ...] = ()
    rgba: Vec4 = (0.8, 0.8, 0.8, 1.0)
    mass_kg: float = 0.1
    scale: float = 1.0

    def __post_init__(self) -> None:
        who = f'object {self.name!r}'
        _require(bool(self.name), 'object name must not be empty')
        _require((self.urdf is None) != (self.shape is None), f'{who}: give exactly one of urdf or shape')
        if self.shape is not None:
            _require(self.shape in PRIMITIVE_SHAPES,
                     f'{who}: unknown shape {self.shape!r}; known: {", ".join(PRIMITIVE_SHAPES)}')
            _require(len(self.size) == _SHAPE_SIZE_LEN[self.shape] and all(s > 0 for s in self.size),
                     f'{who}: a {self.shape} takes {_SHAPE_SIZE_LEN[self.shape]} positive size values, '
                     f'got {self.size}')
        _require(len(self.rgba) == 4 and all(0.0 <= c <= 1.0 for c in self.rgba),
                 f'{who}: rgba must be 4 values in [0, 1], got {self.rgba}')
        _require(self.mass_kg > 0, f'{who}: mass_kg must be positive, got {self.mass_kg}')
        _require(self.scale > 0, f'{who}: scale must be positive, got {self.scale}')


@dataclass(frozen=True)
class SimConfig:
    """Everything a TrayWorld and SimRunner need. See sim/scene.yaml for what each field means."""

    object_set: str
    objects: tuple[ObjectSpec, ...]
    num_objects: int
    rig: str
    cameras: tuple[CameraSpec, ...]
    object_camera: CameraSpec
    grasp_assist: bool
    gravity_mps2: float
    floor_rgba: Vec4
    tray_urdf: str
    tray_position: Vec3
    tray_floor_height_m: float
    tray_inner_half_extent_m: float
    spawn_half_extent_m: float
    spawn_drop_height_m: float
    settle_time_s: float
    arm_sdf: str
    arm_base_position: Vec3
    tcp_offset_m: Vec3
    home: Pose
    presentation: Pose
    dropoff: Pose
    workspace_min: Vec3
    workspace_max: Vec3
    max_tcp_speed_mps: float
    arm_max_force_n: float
    gripper_open_rad: float
    gripper_force_n: float
    approach_height_m: float
    grasp_depth_m: float
    min_grasp_height_m: float
    lift_height_m: float
    lifted_threshold_m: float
    move_timeout_s: float
    still_speed_mps: float
    tick_rate_hz: float = 30.0
    physics_hz: float = 240.0
    camera_randomization: CameraRandomization = CameraRandomization()

    def __post_init__(self) -> None:
        _require(self.tick_rate_hz > 0, f'tick_rate_hz must be positive, got {self.tick_rate_hz}')
        _require(self.physics_hz > 0, f'physics_hz must be positive, got {self.physics_hz}')
        steps = self.physics_hz / self.tick_rate_hz
        _require(steps >= 1 and abs(steps - round(steps)) < 1e-9,
                 f'physics_hz ({self.physics_hz}) must be a whole multiple of tick_rate_hz ({self.tick_rate_hz})')
        _require(len(self.cameras) > 0, 'need at least one scene camera')
        names = [c.name for c in self.cameras] + [self.object_camera.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        _require(not duplicates, f'camera names must be unique, repeated: {duplicates}')
        object_names = [o.name for o in self.objects]
        _require(len(set(object_names)) == len(object_names),
                 f'object set {self.object_set!r} repeats names: '
                 f'{sorted({n for n in object_names if object_names.count(n) > 1})}')
        _require(0 <= self.num_objects <= len(self.objects),
                 f'num_objects must be in [0, {len(self.objects)}] (size of object set {self.object_set!r}), '
                 f'got {self.num_objects}')
        _require(all(lo < hi for lo, hi in zip(self.workspace_min, self.workspace_max)),
                 f'workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}')
        for name in ('home', 'presentation', 'dropoff'):
            pose: Pose = getattr(self, name)
            _require(self.in_workspace(pose.position),
                     f'{name} position {pose.position} lies outside the workspace '
                     f'{self.workspace_min}..{self.workspace_max}')
        positive = ('gravity_mps2', 'tray_inner_half_extent_m', 'spawn_half_extent_m', 'settle_time_s',
                    'max_tcp_speed_mps', 'arm_max_force_n', 'gripper_open_rad', 'gripper_force_n',
                    'approach_height_m', 'lift_height_m', 'lifted_threshold_m', 'move_timeout_s',
                    'still_speed_mps')
        for name in positive:
            _require(getattr(self, name) > 0, f'{name} must be positive, got {getattr(self, name)}')
        _require(self.spawn_half_extent_m <= self.tray_inner_half_extent_m,
                 f'spawn_half_extent_m ({self.spawn_half_extent_m}) must not exceed tray_inner_half_extent_m '
                 f'({self.tray_inner_half_extent_m})')

    @property
    def physics_steps_per_tick(self) -> int:
        return int(round(self.physics_hz / self.tick_rate_hz))

    @property
    def tray_floor_z(self) -> float:
        return self.tray_position[2] + self.tray_floor_height_m

    def in_workspace(self, position: tuple[float, ...]) -> bool:
        return all(lo <= v <= hi for v, lo, hi in zip(position, self.workspace_min, self.workspace_max))


# ----------------------------------------------------------------------------------------------- loading

def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f'simulation config file not found: {path}')
    with path.open() as stream:
        data = yaml.safe_load(stream)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping at the top level, got {type(data).__name__}')
    return data


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a yaml value to the annotated field type (tuples from lists, nested dataclasses from mappings)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f'{where}: expected a mapping, got {value!r}')
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'{where}: expected a list, got {value!r}')
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f'{where}[{i}]') for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f'{where}: expected {len(args)} values, got {len(value)}: {value!r}')
        return tuple(_coerce(v, a, f'{where}[{i}]') for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f'{where}: expected true or false, got {value!r}')
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{where}: expected a number, got {value!r}')
        if hint is int and value != int(value):
            raise ValueError(f'{where}: expected a whole number, got {value!r}')
        return hint(value)
    if hint is str and not isinstance(value, str):
        raise ValueError(f'{where}: expected a string, got {value!r}')
    return value


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    for key in values:
        if key not in known:
            raise ValueError(f'{where}: unknown key {key!r}; known keys: {", ".join(sorted(known))}')
    _require_keys(values, [f.name for f in fields if f.default is dataclasses.MISSING], where)
    return cls(**{k: _coerce(v, hints[k], f'{where}: {k}') for k, v in values.items()})


def _require_keys(values: Mapping[str, Any], required: list[str], where: str) -> None:
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f'{where}: missing key{"s" if len(missing) > 1 else ""} {", ".join(missing)}')


def _named_file(folder: str, name: str, what: str) -> Path:
    """sim/<folder>/<name>.yaml, or `name` itself when it is a path to a yaml file."""
    if name.endswith('.yaml') or '/' in name:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f'{what} file not found: {path}')
        return path
    directory = share_path('sim', folder)
    path = directory / f'{name}.yaml'
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob('*.yaml'))
        raise ValueError(f'unknown {what} {name!r}; known: {", ".join(known) or "(none)"} (in {directory})')
    return path


def _load_object_set(name: str) -> tuple[ObjectSpec, ...]:
    path = _named_file('objects', name, 'object set')
    data = _load_yaml(path)
    unknown = set(data) - {'objects'}
    if unknown:
        raise ValueError(f'{path}: unknown key {sorted(unknown)[0]!r}; known keys: objects')
    entries = data.get('objects') or []
    if not entries:
        raise ValueError(f'{path}: the object set lists no objects')
    return tuple(_build(ObjectSpec, entry, f'{path}: objects[{i}]') for i, entry in enumerate(entries))


def _load_rig(name: str, image_size: tuple[int, int] | None) -> tuple[CameraSpec, ...]:
    path = _named_file('rigs', name, 'camera rig')
    data = _load_yaml(path)
    unknown = set(data) - {'defaults', 'cameras'}
    if unknown:
        raise ValueError(f'{path}: unknown key {sorted(unknown)[0]!r}; known keys: cameras, defaults')
    defaults = data.get('defaults') or {}
    cameras = data.get('cameras') or []
    if not cameras:
        raise ValueError(f'{path}: the rig lists no cameras')
    # image_size replaces the rig's default size; a camera that states its own size keeps it (sim/rigs/main_job.yaml:
    # the task camera's 48 px, which the RL VAE and policy were trained on, beside 128 px scene cameras).
    return tuple(_build(CameraSpec, {**_sized(defaults, image_size), **entry}, f'{path}: cameras[{i}]')
                 for i, entry in enumerate(cameras))


def _sized(camera: Any, image_size: tuple[int, int] | None) -> Any:
    """A camera's yaml mapping with the image size replaced by image_size (width, height), if given."""
    if image_size is None or not isinstance(camera, Mapping):
        return camera
    return {**camera, 'width': image_size[0], 'height': image_size[1]}


def load_sim_config(scene: str | Path | None = None, rig: str = 'default', object_set: str | None = None,
                    num_objects: int | None = None, image_size: tuple[int, int] | None = None,
                    **overrides: Any) -> SimConfig:
    """Load scene.yaml, the named camera rig (sim/rigs/<rig>.yaml) and object set (sim/objects/<set>.yaml).

    image_size is (width, height) and applies to every camera that does not state its own size in the rig, the object
    camera included. overrides replace
    SimConfig fields after loading (e.g. grasp_assist=False, tick_rate_hz=15.0); an unknown name is an error.
    rig and object_set also accept a path to a yaml file.
    """
    scene_path = Path(scene) if scene is not None else share_path('sim', 'scene.yaml')
    values = dict(_load_yaml(scene_path))
    hints = typing.get_type_hints(SimConfig)
    scene_keys = {f.name for f in dataclasses.fields(SimConfig)} - {'objects', 'rig', 'cameras'}
    for key in values:
        if key not in scene_keys:
            raise ValueError(f'{scene_path}: unknown key {key!r}; known keys: {", ".join(sorted(scene_keys))}')
    for key in overrides:
        if key not in scene_keys:
            raise TypeError(f'load_sim_config: unknown override {key!r}; known: {", ".join(sorted(scene_keys))}')
    if 'object_camera' in values:
        values['object_camera'] = _sized(values['object_camera'], image_size)
    fields = {k: _coerce(v, hints[k], f'{scene_path}: {k}') for k, v in values.items()}
    fields.update({k: _coerce(v, hints[k], f'override {k}') for k, v in overrides.items()})
    if object_set is not None:
        fields['object_set'] = object_set
    if num_objects is not None:
        fields['num_objects'] = num_objects
    _require_keys(fields, [f.name for f in dataclasses.fields(SimConfig)
                           if f.name in scene_keys and f.default is dataclasses.MISSING], str(scene_path))
    return SimConfig(objects=_load_object_set(fields['object_set']), rig=rig,
                     cameras=_load_rig(rig, image_size), **fields)
