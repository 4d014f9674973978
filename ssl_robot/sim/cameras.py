"""Fixed cameras rendered with PyBullet's TinyRenderer; view and projection matrices are computed once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet

from ssl_robot.sim.config import CameraSpec


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
