"""Learning instance grasping from the Grasp2Vec reward (Jang, Devin et al. 2018, section 5.3), and its command.

    ssl-robot rl grasp-train --out RUN [--config config/grasp/grasp.yaml] [--set key=value ...]

1. Collect indiscriminate grasp attempts in the sim (ssl_robot.rl.grasp_collection), or reuse RUN's if their
   settings match.
2. Relabel them with goals (ssl_robot.rewards.relabel), afresh every epoch:
   - posthoc: a grasp that lifted an object achieved the goal "that object": reward 1, its goal the object
     camera's image of that object from this grasp or another grasp of it in the same tray;
   - auxiliary, within the tray: goals of the other objects grasped in the same tray, rewarded with the Grasp2Vec
     reward of goal against what was grasped (0 for a grasp that lifted nothing), the negatives that teach which
     object is where;
   - auxiliary, across trays: goals of objects grasped in other trays, rewarded the same way.
3. Fit the grasp critic (ssl_robot.models.grasp_q) to those rewards, one grasp one decision, and save it as a
   policy file (ssl_robot.rl.grasp_policy). `ssl-robot rl grasp-eval --policy learned` evaluates it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml
from tqdm import tqdm

from ssl_robot.atomic import write_atomic
from ssl_robot.inference.model_holder import LoadedModel, default_checkpoint
from ssl_robot.models.encoders import default_device
from ssl_robot.models.grasp_q import GraspQConfig, GraspQNetwork
from ssl_robot.rewards.relabel import Transitions, auxiliary_grasp_goals, posthoc_grasp_labels
from ssl_robot.rl.grasp_collection import CollectionSettings, GraspAttempts, collect, pixel_cell
from ssl_robot.rl.grasp_policy import GraspFeatures, cell_size, cosine_maps, save_grasp_policy, scene_batch
from ssl_robot.rl.instance_grasping import scene_camera
from ssl_robot.sim.config import load_sim_config
from ssl_robot.train.stop_signals import StopSignals
from ssl_robot.typed_config import ConfigError, build, convert_fields, parse_override, require_at_least, to_plain, \
    with_override

TRAY_SEED_STRIDE = 100_000
"""Run seed s collects trays s * TRAY_SEED_STRIDE, +1, ...: different seeds see different trays."""


@dataclass
class GraspTrainConfig:
    """Collection and training of the instance-grasping critic."""

    seed: int = 0
    """Seeds torch, the relabelling and the collection trays (TRAY_SEED_STRIDE)."""
    object_set: str = 'random_urdfs'
    """Object set of sim/objects/ the trays are filled from (the shipped Grasp2Vec's training pool)."""
    camera: str = 'front_left'
    """Scene camera the policy sees (the grasp2vec node's)."""
    trays: int = 350
    """Collection trays; each starts every attempt of it from the same objects in the same places."""
    attempts_per_tray: int = 6
    """Grasp attempts per tray."""
    object_aim_fraction: float = 0.7
    """Share of attempts aimed at a reachable object (plus noise); the rest go anywhere reachable."""
    aim_noise_m: float = 0.015
    """Standard deviation of the aim's Gaussian noise, per axis (m)."""
    workers: int = 2
    """Processes collecting at once, each its own sim."""
    grasp2vec_checkpoint: str = ''
    """Grasp2Vec whose embeddings give goals and rewards ('' = the shipped checkpoint)."""
    reward_normalize: bool = True
    """Grasp2Vec reward of the auxiliary goals: cosine (true, the reward node's default) or the dot product."""
    cross_tray_goals: int = 2
    """Auxiliary goals per grasp drawn from other trays."""
    model: GraspQConfig = field(default_factory=GraspQConfig)
    steps: int = 3000
    """Optimizer steps."""
    batch_size: int = 64
    lr: float = 1e-3
    max_minutes: float = 0.0
    """Stop training after this much wall time, saving the policy (0 = no limit)."""

    def __post_init__(self) -> None:
        convert_fields(self)
        for name in ('seed', 'cross_tray_goals', 'max_minutes'):
            require_at_least(self, name, 0)
        for name in ('workers', 'steps', 'batch_size'):
            require_at_least(self, name, 1)
        if not self.lr > 0:
            raise ValueError(f'GraspTrainConfig.lr must be > 0, got {self.lr}')
        self.collection().check()

    def collection(self) -> CollectionSettings:
        return CollectionSettings(self.object_set, self.camera, self.seed * TRAY_SEED_STRIDE, self.trays,
                                  self.attempts_per_tray, self.object_aim_fraction, self.aim_noise_m)


def load_grasp_config(path: Path | None, overrides: Sequence[str] = ()) -> GraspTrainConfig:
    """The config of path (defaults where absent), then each `key.sub=value` override; ConfigError naming the key."""
    values: dict[str, Any] = {}
    if path is not None:
        values = yaml.safe_load(path.read_text()) or {}
    config = build(GraspTrainConfig, values, '')
    for override in overrides:
        values = with_override(values, *parse_override(override))
        try:
            config = build(GraspTrainConfig, values, '')
        except ConfigError as error:
            raise ConfigError(f'--set {override}: {error}') from None
    return config


@dataclass(frozen=True)
class TrainingRows:
    """Relabelled grasps: row i is attempt attempt[i] with goal embedding goal[i] and reward target[i]."""

    attempt: np.ndarray
    goal: np.ndarray
    target: np.ndarray
    kind: np.ndarray
    """0 posthoc, 1 auxiliary within the tray, 2 auxiliary across trays."""


def _same_object_partner(attempts: GraspAttempts, rng: np.random.Generator) -> np.ndarray:
    """(N,) for each successful attempt, a random successful attempt of the same tray that lifted the same object
    (itself included); -1 for failed attempts."""
    partner = np.full(len(attempts.tray), -1)
    keys = attempts.tray * 10_000 + attempts.object_index
    for row in np.flatnonzero(attempts.success):
        same = np.flatnonzero(attempts.success & (keys == keys[row]))
        partner[row] = rng.choice(same)
    return partner


def relabelled_rows(attempts: GraspAttempts, goals: np.ndarray, config: GraspTrainConfig,
                    rng: np.random.Generator) -> TrainingRows:
    """One epoch of relabelled rows (module doc). goals: (N, D) unit phi_o of each attempt's object image (any
    value where nothing was lifted: those rows never give a goal)."""
    count = len(attempts.tray)
    names, object_ids = np.unique(attempts.object_name, return_inverse=True)
    transitions = Transitions(obs_latent=goals, next_obs_latent=goals, action=attempts.xy,
                              reward=attempts.success.astype(float), goal=goals, episode=np.arange(count),
                              t=np.zeros(count, dtype=np.int64))
    success = attempts.success.astype(bool)
    partner = _same_object_partner(attempts, rng)
    posthoc = posthoc_grasp_labels(transitions, goals[np.maximum(partner, 0)], success)
    parts = [(np.flatnonzero(success), posthoc.goal, posthoc.reward, 0)]
    for tray in np.unique(attempts.tray):
        rows = np.flatnonzero(attempts.tray == tray)
        within = auxiliary_grasp_goals(transitions.take(rows), goals[rows], success[rows], rng,
                                       object_ids=object_ids[rows], goals_per_transition=len(rows),
                                       normalize=config.reward_normalize)
        parts.append((rows[within.source_row], within.transitions.goal, within.transitions.reward, 1))
    if config.cross_tray_goals:
        # Across trays the episode is the tray, so no goal comes from the grasp's own tray (those are above).
        by_tray = dataclasses.replace(transitions, episode=attempts.tray)
        across = auxiliary_grasp_goals(by_tray, goals, success, rng, object_ids=object_ids,
                                       goals_per_transition=config.cross_tray_goals, normalize=config.reward_normalize)
        parts.append((across.source_row, across.transitions.goal, across.transitions.reward, 2))
    return TrainingRows(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.clip(np.concatenate([p[2] for p in parts]), 0.0, 1.0),
                        np.concatenate([np.full(len(p[0]), p[3]) for p in parts]))


def _attempts(config: GraspTrainConfig, run: Path, cell_size_px: int) -> GraspAttempts:
    path = run / 'grasp_attempts.npz'
    settings = config.collection()
    if path.is_file():
        attempts = GraspAttempts.load(path)
        if attempts.settings == settings:
            print(f'reusing {len(attempts.tray)} grasp attempts of {path}', file=sys.stderr)
            return attempts
        print(f'{path} was collected with other settings; collecting again', file=sys.stderr)
    started = time.monotonic()
    with tqdm(total=config.trays, desc='collecting trays', unit='tray', file=sys.stderr) as bar:
        attempts = collect(settings, cell_size_px, config.workers, progress=bar.update)
    attempts.save(path)
    print(f'collected {len(attempts.tray)} attempts ({attempts.success.mean():.0%} lifted something) in '
          f'{time.monotonic() - started:.0f} s', file=sys.stderr)
    return attempts


def _cell_size(config: GraspTrainConfig) -> int:
    spec = scene_camera(load_sim_config(object_set=config.object_set), config.camera)
    return cell_size(config.model, spec.width, spec.height)


def train_grasp_policy(config: GraspTrainConfig, run: Path) -> int:
    """Collect (or reuse), relabel and train; writes RUN/config.yaml, metrics.jsonl and grasp_policy.safetensors.
    Returns the exit status: 0, or 130 when a signal stopped training early (the policy is saved)."""
    size = _cell_size(config)   # also refuses an unknown camera before anything is written
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(run / 'config.yaml', yaml.safe_dump(to_plain(config), sort_keys=False))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 5])
    attempts = _attempts(config, run, size)
    device = default_device()
    loaded = LoadedModel(Path(config.grasp2vec_checkpoint) if config.grasp2vec_checkpoint
                         else default_checkpoint('grasp2vec'), 'grasp2vec', device=str(device))
    features = GraspFeatures(loaded)
    goals = features.goals(attempts.object_images).numpy().astype(np.float64)
    scene_maps = features.scene_maps(attempts.scenes)
    scenes = scene_batch(attempts.scenes, config.model.image_size)
    cells = torch.from_numpy(pixel_cell(attempts.pixel, size, config.model.map_size))
    network = GraspQNetwork(config.model).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else None
    status, rows, order, position = 0, None, np.empty(0, int), 0
    with StopSignals() as signals, (run / 'metrics.jsonl').open('w') as log, \
            tqdm(total=config.steps, desc='training grasp critic', unit='step', file=sys.stderr) as bar:
        for step in range(1, config.steps + 1):
            if position + config.batch_size > len(order):
                rows = relabelled_rows(attempts, goals, config, rng)
                order, position = rng.permutation(len(rows.attempt)), 0
            batch_rows = order[position:position + config.batch_size]
            position += config.batch_size
            attempt = rows.attempt[batch_rows]
            tray = torch.from_numpy(attempts.tray[attempt])
            goal = torch.from_numpy(rows.goal[batch_rows]).float()
            batch = {'scene': scenes[tray], 'similarity': cosine_maps(goal, scene_maps[tray]), 'goal': goal,
                     'cell': cells[attempt], 'target': torch.from_numpy(rows.target[batch_rows]).float()}
            loss, metrics = network({k: v.to(device) for k, v in batch.items()})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update()
            if step % 50 == 0 or step == config.steps:
                log.write(json.dumps({'step': step, **metrics}) + '\n')
                bar.set_postfix(loss=f'{metrics["loss"]:.3f}')
            if signals.received or (deadline is not None and time.monotonic() > deadline):
                status = 130 if signals.received else 0
                print(f'stopping at step {step}: {signals.received.name if signals.received else "max_minutes"}',
                      file=sys.stderr)
                break
    path = save_grasp_policy(run / 'grasp_policy.safetensors', network.cpu(), attempts.reach_mask,
                             attempts.camera_view, load_sim_config(object_set=config.object_set).tray_floor_z,
                             loaded.model_id, {'steps': str(step)})
    print(f'saved {path} after {step} steps', file=sys.stderr)
    return status

