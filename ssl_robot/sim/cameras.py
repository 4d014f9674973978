"""Fixed cameras rendered with PyBullet's TinyRenderer; view and projection matrices are computed once per pose.

randomized_camera draws a camera's pose for one episode within CameraRandomization's bounds; camera_pose is the
pose as an episode event records it. project_to_pixel and pixel_on_plane map between world points and a camera's
pixels (OpenCV convention: pixel centres at integer coordinates, as CameraSpec.intrinsics), e.g. to grasp where a
heatmap over a scene image peaks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet

from ssl_robot.sim.config import CameraRandomization, CameraSpec


@dataclass
class CameraFrame:
    name: str
    rgb: np.ndarray                     # (H, W, 3) uint8
    segmentation: np.ndarray | None     # (H, W) int32: object index, -1 elsewhere
    K: np.ndarray                       # (3, 3) intrinsics of this image


def view_matrix(spec: CameraSpec) -> np.ndarray:
    """4x4 world-to-camera transform in OpenGL convention (camera looks down -z, y up), row-major."""
    flat = pybullet.computeViewMatrix(spec.eye, spec.target, spec.up)
    return np.array(flat).reshape(4, 4).T   # pybullet returns column-major


def project_to_pixel(spec: CameraSpec, point: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """(u, v) pixel coordinates of a world point (x, y, z) in spec's image; ValueError if it is not in front."""
    x, y, z, _ = view_matrix(spec) @ np.append(np.asarray(point, dtype=float), 1.0)
    if z >= 0:
        raise ValueError(f'point {list(point)} is behind camera {spec.name!r}')
    u, v, w = spec.intrinsics() @ np.array([x, -y, -z])   # OpenGL camera axes -> OpenCV
    return np.array([u / w, v / w])


def pixel_on_plane(spec: CameraSpec, pixel: tuple[float, float] | np.ndarray, height_m: float) -> np.ndarray:
    """The world point (x, y, height_m) seen at pixel (u, v) of spec's image: the pixel's ray met with the
    horizontal plane z = height_m. ValueError if the ray never meets it in front of the camera."""
    u, v = (float(c) for c in pixel)
    intrinsics = spec.intrinsics()
    focal, cx, cy = intrinsics[0, 0], intrinsics[0, 2], intrinsics[1, 2]
    ray_camera = np.array([(u - cx) / focal, -(v - cy) / focal, -1.0])   # OpenCV ray in OpenGL camera axes
    ray = view_matrix(spec)[:3, :3].T @ ray_camera
    eye = np.asarray(spec.eye, dtype=float)
    if abs(ray[2]) < 1e-12 or (height_m - eye[2]) / ray[2] <= 0:
        raise ValueError(f'pixel {[u, v]} of camera {spec.name!r} does not look at the plane z = {height_m} m')
    return eye + ray * (height_m - eye[2]) / ray[2]


class Camera:
    """One camera bound to a physics client."""

    def __init__(self, client: int, spec: CameraSpec) -> None:
        self.spec = spec
        self._client = client
        self._view = pybullet.computeViewMatrix(spec.eye, spec.target, spec.up)
        self._projection = pybullet.computeProjectionMatrixFOV(spec.fov_deg, spec.width / spec.height,
                                                               spec.near, spec.far)
        self._intrinsics = spec.intrinsics()

    def render(self, segmentation_lut: np.ndarray) -> CameraFrame:
        """Render now. segmentation_lut maps a pybullet body id to an object index (last entry -1)."""
        spec = self.spec
        _, _, rgba, _, bodies = pybullet.getCameraImage(
            spec.width, spec.height, self._view, self._projection, shadow=0,
            renderer=pybullet.ER_TINY_RENDERER, physicsClientId=self._client)
        rgba = np.asarray(rgba, np.uint8).reshape(spec.height, spec.width, 4)
        bodies = np.asarray(bodies, np.int32).reshape(spec.height, spec.width)
        return CameraFrame(name=spec.name, rgb=np.ascontiguousarray(rgba[..., :3]),
                           segmentation=segmentation_lut[bodies],
                           K=self._intrinsics.copy())


def _rotated(vector: np.ndarray, axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """vector turned by angle_rad about the unit axis (Rodrigues)."""
    return (vector * math.cos(angle_rad) + np.cross(axis, vector) * math.sin(angle_rad)
            + axis * float(axis @ vector) * (1.0 - math.cos(angle_rad)))


def _unit(rng: np.random.Generator) -> np.ndarray:
    direction = rng.normal(size=3)
    return direction / np.linalg.norm(direction)


def randomized_camera(spec: CameraSpec, bounds: CameraRandomization, rng: np.random.Generator) -> CameraSpec:
    """spec with its pose drawn within bounds (see CameraRandomization); the same rng state gives the same pose.
    Every draw is made whatever the bounds, so that one camera's bounds do not shift the next camera's draws."""
    offset = _unit(rng) * bounds.position_m * rng.uniform() ** (1.0 / 3.0)   # uniform in the ball
    across = np.cross(_unit(rng), np.subtract(spec.target, spec.eye))
    aim_rad = math.radians(bounds.aim_deg) * rng.uniform()
    fov_deg = spec.fov_deg + bounds.fov_deg * rng.uniform(-1.0, 1.0)
    eye = np.add(spec.eye, offset)
    target = spec.target
    if aim_rad > 0 and np.linalg.norm(across) > 0:
        view = _rotated(np.subtract(spec.target, eye), across / np.linalg.norm(across), aim_rad)
        target = tuple((eye + view).tolist())
    return dataclasses.replace(spec, eye=tuple(eye.tolist()), target=target, fov_deg=fov_deg)


def camera_pose(spec: CameraSpec) -> dict[str, Any]:
    """The pose of a camera as an episode event records it: eye, target, up (m, world frame), vertical fov (deg)."""
    return {'eye': [float(v) for v in spec.eye], 'target': [float(v) for v in spec.target],
            'up': [float(v) for v in spec.up], 'fov_deg': float(spec.fov_deg)}
