"""The learned instance-grasping policy: a goal-conditioned grasp critic (ssl_robot.models.grasp_q) and its argmax.

    policy = load_grasp_policy('RUN/grasp_policy.safetensors')
    xy = policy(view)            # GraspView -> tray (x, y), as every policy of ssl_robot.rl.instance_grasping

The goal and the coarse "where is it" cue come from a frozen Grasp2Vec (GraspFeatures); the file names the
Grasp2Vec model id it was trained with and refuses to run with another one, whose embeddings would mean something
else. It also holds the scene camera's view and the reach mask of the collection: aiming is only meaningful through
that camera, so another view is refused with both named.

A policy file is safetensors: the critic's weights and the reach mask, and in the header the format, the
GraspQConfig, the camera view, the tray floor height and the Grasp2Vec model id. Pickles, other files and weights
that do not fit the config are refused with a CheckpointError naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from ssl_robot import images
from ssl_robot.atomic import write_atomic
from ssl_robot.inference.model_holder import LoadedModel, checkpoint_path, default_checkpoint
from ssl_robot.models.checkpoint import CheckpointError, load_tensors, read_metadata, tensor_problems
from ssl_robot.models.encoders import default_device
from ssl_robot.models.grasp2vec import Grasp2Vec
from ssl_robot.models.grasp_q import GraspQConfig, GraspQNetwork
from ssl_robot.rl.grasp_collection import cell_centre_pixel, view_of
from ssl_robot.rl.instance_grasping import GRASP_PLANE_HEIGHT_M, GraspView
from ssl_robot.sim.cameras import pixel_on_plane
from ssl_robot.sim.config import CameraSpec
from ssl_robot.typed_config import build, to_plain

FORMAT = 'ssl_robot.grasp_policy/1'
SHIPPED_POLICY = Path(__file__).resolve().parents[1] / 'checkpoints' / 'grasp_policy.safetensors'
VIEW_TOLERANCE = 1e-6
ENCODE_CHUNK = 256
"""Images encoded per forward pass, to bound memory on large collections."""


class GraspFeatures:
    """What the critic takes from a frozen Grasp2Vec: unit goal embeddings phi_o(g) / |phi_o(g)| and the unit
    scene map phi_s,spatial(s) (each location's vector scaled to length 1, zero vectors left zero), whose dot
    product is the cosine map the critic sees."""

    def __init__(self, loaded: LoadedModel) -> None:
        if not isinstance(loaded.model, Grasp2Vec):
            raise ValueError(f'the grasp policy needs a Grasp2Vec checkpoint, got {loaded.model_id}')
        self.loaded = loaded

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    @torch.no_grad()
    def _encode(self, encode: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray) -> torch.Tensor:
        size = self.loaded.config.image_size
        return torch.cat([encode(images.rgb_to_tensor(images.model_pixels(list(chunk), size))
                                 .to(self.loaded.device)).cpu()
                          for chunk in np.array_split(frames, max(1, -(-len(frames) // ENCODE_CHUNK)))])

    def goals(self, object_images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, D) unit phi_o, on the CPU."""
        return F.normalize(self._encode(self.loaded.model.object_encoder, object_images), dim=-1)

    def scene_maps(self, scenes: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, D, h, w) unit-per-location phi_s,spatial, on the CPU."""
        return F.normalize(self._encode(self.loaded.model.scene_encoder.spatial, scenes), dim=1)


def cosine_maps(goals: torch.Tensor, scene_maps: torch.Tensor) -> torch.Tensor:
    """(B, D) unit goals, (B, D, h, w) unit scene maps -> (B, h, w) cosine of each goal with its scene's locations."""
    return torch.einsum('bd,bdhw->bhw', goals, scene_maps)


def scene_batch(scenes: np.ndarray, image_size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, S, S) float in [0, 1], as the critic sees scenes."""
    return images.rgb_to_tensor(images.model_pixels(list(scenes), image_size))


def cell_size(config: GraspQConfig, width: int, height: int) -> int:
    """Scene image pixels per Q-map cell; ValueError unless the image is square and a multiple of the map."""
    if width != height or width % config.map_size:
        raise ValueError(f'the scene camera must be square with a side divisible by the Q map side '
                         f'({config.map_size}), got {width}x{height}')
    return width // config.map_size


def save_grasp_policy(path: str | os.PathLike, network: GraspQNetwork, reach_mask: np.ndarray,
                      camera_view: dict[str, Any], tray_floor_z: float, grasp2vec_id: str,
                      metadata: dict[str, str] | None = None) -> Path:
    """Write the critic, its reach mask, camera view, tray floor height and Grasp2Vec id to path, atomically;
    returns the path."""
    path = Path(path)
    header = {'format': FORMAT, 'config': json.dumps(to_plain(network.config)),
              'camera_view': json.dumps(camera_view), 'tray_floor_z': repr(float(tray_floor_z)),
              'grasp2vec': grasp2vec_id, **(metadata or {})}
    tensors = {f'network.{name}': t.detach().cpu().contiguous() for name, t in network.state_dict().items()}
    tensors['reach_mask'] = torch.from_numpy(np.ascontiguousarray(reach_mask, dtype=np.uint8))
    write_atomic(path, safetensors.torch.save(tensors, metadata=header))
    return path


@dataclass
class LearnedGraspPolicy:
    """Grasp at the reachable cell of highest Q for the goal (module doc)."""

    network: GraspQNetwork
    reach_mask: np.ndarray
    camera_view: dict[str, Any]
    tray_floor_z: float
    """Height of the tray floor the policy was trained over (m, world frame)."""
    features: GraspFeatures
    path: Path

    def camera(self, name: str = 'scene') -> CameraSpec:
        """The scene camera the policy was trained for, rebuilt from its view (for a node that has no sim rig)."""
        view = self.camera_view
        return CameraSpec(name=name, width=int(view['width']), height=int(view['height']),
                          fov_deg=float(view['fov_deg']), eye=tuple(view['eye']), target=tuple(view['target']),
                          up=tuple(view['up']))

    def check_view(self, view: GraspView) -> None:
        actual = view_of(view.camera)
        for key, expected in self.camera_view.items():
            if not np.allclose(np.asarray(actual[key], float), np.asarray(expected, float), atol=VIEW_TOLERANCE):
                raise ValueError(f'{self.path} was trained for camera view {self.camera_view}, got {actual} '
                                 f'(camera {view.camera.name!r}): {key} differs')

    @torch.no_grad()
    def q_map(self, scene: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(M, M) Q (expected reward) of a grasp at each cell for one scene and goal image; unreachable cells NaN."""
        device = next(self.network.parameters()).device
        goals = self.features.goals(goal[None])
        cue = cosine_maps(goals, self.features.scene_maps(scene[None]))
        logits = self.network.q_logits(scene_batch(scene[None], self.network.config.image_size).to(device),
                                       cue.to(device), goals.to(device))[0]
        return np.where(self.reach_mask, torch.sigmoid(logits).cpu().numpy(), np.nan)

    def choose(self, view: GraspView) -> tuple[tuple[float, float], float]:
        """((x, y) of the grasp, its Q) for one view: the reachable cell of highest Q, on the grasp plane."""
        self.check_view(view)
        q = self.q_map(view.scene, view.goal)
        cell = np.unravel_index(int(np.nanargmax(q)), q.shape)
        pixel = cell_centre_pixel(np.array(cell), cell_size(self.network.config, view.camera.width,
                                                            view.camera.height))
        point = pixel_on_plane(view.camera, pixel, view.tray_floor_z + GRASP_PLANE_HEIGHT_M)
        return (float(point[0]), float(point[1])), float(q[cell])

    def __call__(self, view: GraspView) -> tuple[float, float]:
        return self.choose(view)[0]

def load_grasp_policy(path: str | os.PathLike | None = None, grasp2vec: str | os.PathLike | None = None,
                      device: torch.device | None = None) -> LearnedGraspPolicy:
    """The policy at path (default: the shipped one; a bare file name may name a shipped policy, as for every
    checkpoint parameter) with the Grasp2Vec checkpoint it names (default: shipped)."""
    path = checkpoint_path(path) if path is not None else SHIPPED_POLICY
    metadata = read_metadata(path, 'grasp policy')
    if metadata.get('format') != FORMAT:
        raise CheckpointError(f'{path} is a safetensors file but not an ssl_robot grasp policy: its format is '
                              f'{metadata.get("format")!r}, this code reads {FORMAT!r}')
    try:
        config = build(GraspQConfig, json.loads(metadata['config']))
        camera_view = json.loads(metadata['camera_view'])
        tray_floor_z = float(metadata['tray_floor_z'])
        grasp2vec_id = metadata['grasp2vec']
    except (KeyError, ValueError) as error:
        raise CheckpointError(f'{path} has a malformed grasp policy header: {error}') from None
    device = device or default_device()
    loaded = LoadedModel(grasp2vec if grasp2vec is not None else default_checkpoint('grasp2vec'),
                         'grasp2vec', device=str(device))
    if loaded.model_id != grasp2vec_id:
        raise CheckpointError(f'{path} was trained with Grasp2Vec {grasp2vec_id}, but {loaded.path} is '
                              f'{loaded.model_id}: pass the Grasp2Vec checkpoint it was trained with')
    network = GraspQNetwork(config)
    tensors = load_tensors(path)
    mask = tensors.pop('reach_mask', None)
    weights = {name.removeprefix('network.'): t for name, t in tensors.items()}
    problems = tensor_problems(network.state_dict(), weights, 'the config')
    if mask is None or mask.shape != (config.map_size, config.map_size):
        problems.append(f'reach_mask must be ({config.map_size}, {config.map_size}), got '
                        f'{None if mask is None else tuple(mask.shape)}')
    if problems:
        raise CheckpointError(f'{path} does not fit its own config ({config}): {"; ".join(problems)}')
    network.load_state_dict(weights)
    return LearnedGraspPolicy(network.to(device).eval(), mask.numpy().astype(bool), camera_view, tray_floor_z,
                              GraspFeatures(loaded), path)
