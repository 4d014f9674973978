"""Grasp attempts in the tray sim, as the data a goal-conditioned grasp critic learns from (Grasp2Vec's setting).

Pure (no rclpy). For each collection tray (seed), the scene camera's image of the tray with the arm home, then
`attempts_per_tray` top-down grasps, each from the same starting tray (reset with the same seed in between):
- a share `object_aim_fraction` aimed at a uniformly drawn reachable object's centre plus Gaussian noise: the
  sim's indiscriminate grasps, blurred so that the critic sees near misses;
- the rest at uniform places in the reachable part of the tray, most of which close on air.
Each attempt keeps where it went, whether it lifted something, which object (ground truth, used only to group the
same object's images) and the object camera's image o of what it lifted, Grasp2Vec's goal image.

Collection trays use seeds below EVAL_SEED, so they never meet the held-out trays of `ssl-robot rl grasp-eval`.
The reach mask says which cells of a Q map over the scene image the arm can grasp at (sim's reach check), so that
a policy never aims where no grasp can be made.
"""

from __future__ import annotations

import io
import json
import queue
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ssl_robot.atomic import write_atomic
from ssl_robot.rl.evaluation import EVAL_SEED
from ssl_robot.rl.instance_grasping import GRASP_PLANE_HEIGHT_M, attempt_grasp, reset_tray, scene_camera
from ssl_robot.sim.cameras import camera_pose, pixel_on_plane, project_to_pixel
from ssl_robot.sim.config import CameraSpec, SimConfig, load_sim_config
from ssl_robot.sim.runner import SimRunner

PLACEMENT_TRIES = 200
"""Random grasp places drawn per attempt before giving up on finding a reachable one (a bug, not bad luck)."""


@dataclass(frozen=True)
class CollectionSettings:
    """What a collection was made with; a dataset is reused only when these match."""

    object_set: str
    camera: str
    first_seed: int
    trays: int
    attempts_per_tray: int
    object_aim_fraction: float
    aim_noise_m: float

    def check(self) -> None:
        for name in ('trays', 'attempts_per_tray'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        if not 0 <= self.first_seed or self.first_seed + self.trays > EVAL_SEED:
            raise ValueError(f'collection trays must use seeds in [0, {EVAL_SEED}) (held-out trays start there), got '
                             f'{self.first_seed} .. {self.first_seed + self.trays - 1}')
        if not 0 <= self.object_aim_fraction <= 1:
            raise ValueError(f'object_aim_fraction must be in [0, 1], got {self.object_aim_fraction}')
        if not 0 <= self.aim_noise_m < 0.2:
            raise ValueError(f'aim_noise_m must be in [0, 0.2) m, got {self.aim_noise_m}')


@dataclass(frozen=True, eq=False)
class GraspAttempts:
    """N grasp attempts over T trays (arrays as in the module doc)."""

    settings: CollectionSettings
    camera_view: dict[str, Any]
    """The scene camera's pose, field of view and size (view_of): a policy is only valid for this view."""
    scenes: np.ndarray
    """(T, H, W, 3) uint8: each tray before its grasps, arm home."""
    reach_mask: np.ndarray
    """(H // c, W // c) bool for the cell size c the mask was made for: the arm can grasp at the cell's centre."""
    tray: np.ndarray
    """(N,) int: the tray (row of scenes) of each attempt."""
    xy: np.ndarray
    """(N, 2) float: where each grasp went (tray x, y in metres)."""
    pixel: np.ndarray
    """(N, 2) float: (u, v) of xy at the grasp plane height in the scene image."""
    success: np.ndarray
    """(N,) bool: an object was lifted."""
    object_name: np.ndarray
    """(N,) str: the lifted object's name ('' if none)."""
    object_index: np.ndarray
    """(N,) int: the lifted object's index in its tray (-1 if none)."""
    object_images: np.ndarray
    """(N, h, w, 3) uint8: the object camera's image o of the lifted object (zeros if none)."""

    def save(self, path: Path) -> None:
        """Write to path (.npz, no pickles), atomically."""
        buffer = io.BytesIO()
        arrays = {name: getattr(self, name) for name in ('scenes', 'reach_mask', 'tray', 'xy', 'pixel', 'success',
                                                         'object_name', 'object_index', 'object_images')}
        header = json.dumps({'settings': self.settings.__dict__, 'camera_view': self.camera_view})
        np.savez_compressed(buffer, header=np.array(header), **arrays)
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> GraspAttempts:
        """The attempts saved at path; ValueError naming the file if it is not such a file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data['header']))
                arrays = {name: data[name] for name in data.files if name != 'header'}
            return cls(CollectionSettings(**header['settings']), header['camera_view'], **arrays)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{path} is not a grasp attempts file: {error}') from None


def cell_centre_pixel(cell: np.ndarray, cell_size: int) -> np.ndarray:
    """(..., 2) (row, column) of a map of cell_size-pixel cells -> (..., 2) (u, v) of its centre in the image."""
    cell = np.asarray(cell, dtype=float)
    return np.stack([(cell[..., 1] + 0.5) * cell_size - 0.5, (cell[..., 0] + 0.5) * cell_size - 0.5], axis=-1)


def pixel_cell(pixel: np.ndarray, cell_size: int, map_size: int) -> np.ndarray:
    """(..., 2) (u, v) image pixels -> (..., 2) int (row, column) of the map cell holding each, clipped to the map."""
    pixel = np.asarray(pixel, dtype=float)
    cell = np.floor((pixel[..., ::-1] + 0.5) / cell_size).astype(np.int64)
    return np.clip(cell, 0, map_size - 1)


def grasp_plane_height(config: SimConfig) -> float:
    """The plane through which grasp places and image pixels are matched (as heatmap_argmax's)."""
    return config.tray_floor_z + GRASP_PLANE_HEIGHT_M


def reach_mask(runner: SimRunner, spec: CameraSpec, cell_size: int) -> np.ndarray:
    """(H // cell_size, W // cell_size) bool: a grasp at the cell centre's point on the grasp plane is allowed."""
    rows, columns = spec.height // cell_size, spec.width // cell_size
    mask = np.zeros((rows, columns), dtype=bool)
    for row in range(rows):
        for column in range(columns):
            u, v = cell_centre_pixel(np.array([row, column]), cell_size)
            try:
                point = pixel_on_plane(spec, (u, v), grasp_plane_height(runner.config))
            except ValueError:
                continue
            mask[row, column] = runner.grasp_problem((float(point[0]), float(point[1]))) is None
    return mask


def _grasp_place(runner: SimRunner, settings: CollectionSettings, rng: np.random.Generator) -> tuple[float, float]:
    config = runner.config
    objects = runner.graspable_objects()
    for _ in range(PLACEMENT_TRIES):
        if objects and rng.random() < settings.object_aim_fraction:
            centre = runner.world.object_center(int(rng.choice(objects)))[:2]
            xy = centre + rng.normal(0.0, settings.aim_noise_m, 2)
        else:
            half = config.tray_inner_half_extent_m
            xy = np.asarray(config.tray_position[:2]) + rng.uniform(-half, half, 2)
        if runner.grasp_problem((float(xy[0]), float(xy[1]))) is None:
            return float(xy[0]), float(xy[1])
    raise RuntimeError(f'no reachable grasp place in {PLACEMENT_TRIES} draws')


def _collect_trays(settings: CollectionSettings, seeds: list[int], trays_done: Any = None) -> dict[str, np.ndarray]:
    """The attempts of the trays of `seeds` (one worker's share), as arrays keyed like GraspAttempts' fields;
    trays_done (a queue) gets a None after each tray."""
    config = load_sim_config(object_set=settings.object_set)
    spec = scene_camera(config, settings.camera)
    rows: dict[str, list] = {k: [] for k in ('scenes', 'tray', 'xy', 'pixel', 'success', 'object_name',
                                              'object_index', 'object_images')}
    with SimRunner(config, mode='idle', seed=seeds[0]) as runner:
        for number, seed in enumerate(seeds):
            rng = np.random.default_rng([seed, 11])
            rows['scenes'].append(reset_tray(runner, seed, render=True).scene[settings.camera].rgb)
            for attempt in range(settings.attempts_per_tray):
                if attempt:
                    reset_tray(runner, seed, render=False)
                xy = _grasp_place(runner, settings, rng)
                event, outputs = attempt_grasp(runner, xy)
                lifted = event.success and event.o_ns in outputs
                image = outputs[event.o_ns].object_camera.rgb if lifted else None
                point = (*event.target_xy, grasp_plane_height(config))
                rows['tray'].append(number)
                rows['xy'].append(event.target_xy)
                rows['pixel'].append(project_to_pixel(spec, point))
                rows['success'].append(lifted)
                rows['object_name'].append(event.object_name if lifted else '')
                rows['object_index'].append(event.object_index if lifted else -1)
                rows['object_images'].append(image)
            if trays_done is not None:
                trays_done.put(None)
    shape = next((i.shape for i in rows['object_images'] if i is not None),
                 (config.object_camera.height, config.object_camera.width, 3))
    rows['object_images'] = [np.zeros(shape, np.uint8) if i is None else i for i in rows['object_images']]
    return {name: np.asarray(values) for name, values in rows.items()}


def collect(settings: CollectionSettings, cell_size: int, workers: int = 1,
            progress: Callable[[int], None] = lambda _: None) -> GraspAttempts:
    """Collect settings.trays trays of attempts, split over `workers` processes (each its own sim)."""
    settings.check()
    config = load_sim_config(object_set=settings.object_set)
    spec = scene_camera(config, settings.camera)
    with SimRunner(config, mode='idle', seed=settings.first_seed) as runner:
        mask = reach_mask(runner, spec, cell_size)
    seeds = list(range(settings.first_seed, settings.first_seed + settings.trays))
    shares = [share.tolist() for share in np.array_split(seeds, max(1, min(workers, len(seeds))))]
    # One share per worker (a tray's attempts depend a little on the sim's history, so the shares fix the data);
    # each tray done is reported through a queue, so that progress moves while the shares run.
    context = get_context('spawn')
    with context.Manager() as manager, ProcessPoolExecutor(len(shares), mp_context=context) as pool:
        trays_done = manager.Queue()
        futures = [pool.submit(_collect_trays, settings, share, trays_done) for share in shares]
        while not all(future.done() for future in futures) or not trays_done.empty():
            try:
                trays_done.get(timeout=1.0)
                progress(1)
            except queue.Empty:
                pass
        parts = [future.result() for future in futures]
    offsets = np.cumsum([0] + [len(p['scenes']) for p in parts[:-1]])
    merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0] if name != 'tray'}
    merged['tray'] = np.concatenate([p['tray'] + offset for p, offset in zip(parts, offsets)])
    return GraspAttempts(settings, view_of(spec), reach_mask=mask, **merged)


def view_of(spec: CameraSpec) -> dict[str, Any]:
    """What fixes a scene camera's image geometry: its pose, field of view and size."""
    return {**camera_pose(spec), 'width': spec.width, 'height': spec.height}
