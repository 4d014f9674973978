"""`ssl-robot eval-reward`: does a reward rank states by their true distance to the goal, off the straight path?

A policy learns from the reward everywhere it goes, so the reward must order arbitrary states by how far they are
from the goal, not only the states along a straight path to it. For G held-out goals (true states drawn by the env
from seeds seed, seed + 1, ..., as `ssl-robot rl eval` draws its goals) and S random scenes per goal (the hand
anywhere in the workspace; for push the puck anywhere it may start, the hand clear of it), each column's env
poses every scene, observes it as its observer does and scores it against the goal with the reward a policy in
that env would get. Per goal: Spearman rho of the rewards against minus the true task distance (the hand's for
reach, the puck's for push); 1 when the reward orders every scene as the distance does. Every column sees the same
goals, starts and scenes. The episode's start scene is the CC-VAE's context, as in training.

Push's reward pays for the hand and the puck together, so with both moving a reward can rank the puck's distance
poorly because it ranks the hand's too. `--vary` separates them (push only):
  both    the hand and the puck anywhere; rho against the puck's distance (the default, and reach's only probe)
  puck    the hand held at the goal's hand position, the puck anywhere clear of it; rho against the puck's distance
  hand    the puck held at the goal's puck position, the hand anywhere clear of it; rho against the hand's distance

For push the report also gives each reward's steepness: over random scenes, how far the reward's distance moves
when the puck moves 5 cm, over how far when the hand makes the same move (the oracle: 1). A policy collects most
of its reward by the hand when this is small, and the oracle's ratio can be set to a VAE's with
EnvConfig.state_puck_weight to ask whether that alone stops pushing.

Columns:
  oracle (state)             -|state - goal| of the true positions: for reach exactly minus the true distance
                             (rho 1); for push the hand's distance to its goal position counts too
  RL VAE latent              each --vae CHECKPOINT (default: the shipped task VAE, if there is one) on the task camera
  pixel-MSE                  the downsampled task camera image
  scene beta-VAE / CC-VAE    the shipped scene-camera VAEs (ssl_robot/checkpoints) on the default rig's first camera
                             (front_left), rendered at the rig's 128 px and area-downsampled to their 48 px as their
                             training bags were. The task's scene has no clutter objects, unlike those bags.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssl_robot.inference.model_holder import CHECKPOINTS_DIR
from ssl_robot.models.checkpoint import read_checkpoint_header
from ssl_robot.rewards.evaluation import spearman_rho
from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.evaluation import EVAL_SEED, bootstrap_interval, wilson_interval
from ssl_robot.rl.observers import LatentObserver, default_vae_checkpoint, load_task_vae
from ssl_robot.rl.tasks import (HAND_CLEARANCE_M, PUCK_HALF_EXTENT_M, TASKS, WORKSPACE_HALF_EXTENT_M, EnvConfig,
                                GoalState, hand_start_away_from, task_distance, uniform_xy, uniform_xy_clear_of,
                                workspace_bounds)

FAITHFUL_RHO = 0.8
"""The issue's bar: a goal's reward is faithful when rho exceeds it."""
SCENE_RIG, SCENE_IMAGE_SIZE, SCENE_VAE_IMAGE_SIZE = 'default', 128, 48
"""The rig the shipped scene VAEs' bags were recorded with, at its cameras' size, and the size the VAEs take."""
SCENE_VAES = {'scene beta-VAE (front_left)': CHECKPOINTS_DIR / 'betavae.safetensors',
              'scene CC-VAE (front_left)': CHECKPOINTS_DIR / 'ccvae.safetensors'}
SCENE_STREAM = 1
"""Second entropy word of the scenes' rng, so that they are not the stream of the env's first reset seed."""
PROBES = ('both', 'puck', 'hand')
"""What moves between a goal's scenes (module docstring); reach has only 'both'."""
STEP_M, STEP_SCENES, STEP_STREAM = 0.05, 100, 2
"""Push steepness: the move of the puck or the hand, the scenes it is measured in, and their rng's second entropy
word."""


@dataclass(frozen=True)
class RewardColumn:
    """One reward to judge: the env that observes and scores, and the camera it sees through."""

    label: str
    config: EnvConfig
    scene_vae: Path | None = None
    """A scene-camera VAE observing the scene camera (rendered larger than it takes) instead of the config's own
    observer."""

    def make_env(self) -> TrayGoalEnv:
        if self.scene_vae is None:
            return TrayGoalEnv(self.config)
        observer = LatentObserver(self.config, load_task_vae(self.scene_vae, SCENE_VAE_IMAGE_SIZE))
        return TrayGoalEnv(self.config, observer=observer)


def default_columns(task: str, vaes: Sequence[Path], scene_vaes: bool = True, rig: str = '') -> list[RewardColumn]:
    """oracle, one column per task-camera VAE, pixel-MSE, and (scene_vaes) the shipped scene-camera VAEs. rig: the
    task camera's (EnvConfig.rig) of the VAE and pixel columns; the VAEs must have been trained on its images."""
    base = EnvConfig(task=task, mode='state', goal_source='state')
    columns = [RewardColumn('oracle (state)', base)]
    if len({Path(vae).resolve() for vae in vaes}) < len(vaes):
        raise ValueError(f'each --vae checkpoint may be given once, got {[str(vae) for vae in vaes]}')
    names = [Path(vae).name for vae in vaes]
    for vae, name in zip(vaes, names):
        header = read_checkpoint_header(vae)
        shown = name if names.count(name) == 1 else vae  # checkpoints of several runs are all model.safetensors
        columns.append(RewardColumn(f'RL {header.method} latent ({shown})', EnvConfig(
            task=task, mode='latent', goal_source='state', vae_checkpoint=str(vae), rig=rig,
            image_size=int(header.config['image_size']))))
    columns.append(RewardColumn('pixel-MSE (task camera)', EnvConfig(task=task, mode='pixel', goal_source='state',
                                                                     rig=rig)))
    if scene_vaes:
        scene = EnvConfig(task=task, mode='latent', goal_source='state', rig=SCENE_RIG, image_size=SCENE_IMAGE_SIZE)
        columns += [RewardColumn(label, scene, scene_vae=path) for label, path in SCENE_VAES.items()]
    return columns


def check_probe(task: str, vary: str) -> None:
    if vary not in PROBES or (task != 'push' and vary != 'both'):
        raise ValueError(f"vary must be one of {PROBES} for push and 'both' for {task}, got {vary!r}")


def draw_scenes(task: str, goals: int, samples: int, seed: int, vary: str = 'both',
                goal_states: Sequence[GoalState] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """Hand positions (goals, samples, 2), and for push puck positions of the same shape (else None). vary 'puck'
    or 'hand' holds the other one at its position in goal_states[goal] (one per goal)."""
    check_probe(task, vary)
    if vary != 'both' and len(goal_states) != goals:
        raise ValueError(f'vary {vary!r} needs one goal state per goal ({goals}), got {len(goal_states)}')
    rng = np.random.default_rng([seed, SCENE_STREAM])
    push = task == 'push'
    hands = np.empty((goals, samples, 2))
    pucks = np.empty((goals, samples, 2)) if push else None
    for index in np.ndindex(goals, samples):
        if vary == 'puck':
            hands[index] = goal_states[index[0]].hand_xy
            pucks[index] = uniform_xy_clear_of(rng, PUCK_HALF_EXTENT_M, hands[index])
        elif vary == 'hand':
            pucks[index] = goal_states[index[0]].object_xy
            hands[index] = uniform_xy_clear_of(rng, WORKSPACE_HALF_EXTENT_M, pucks[index])
        else:
            puck = uniform_xy(rng, PUCK_HALF_EXTENT_M) if push else None
            hands[index] = hand_start_away_from(rng, puck)
            if push:
                pucks[index] = puck
    return hands, pucks


def held_out_goal_states(task: str, goals: int, seed: int) -> list[GoalState]:
    """The true goals of env seeds seed, seed + 1, ...: every mode draws the same goal from a seed."""
    env = TrayGoalEnv(EnvConfig(task=task, mode='state', goal_source='state'))
    states = []
    try:
        for goal in range(goals):
            env.reset(seed=seed + goal)
            states.append(env.goal_state)
        return states
    finally:
        env.close()


def reward_rhos(column: RewardColumn, hands: np.ndarray, pucks: np.ndarray | None, seed: int, vary: str = 'both'
                ) -> np.ndarray:
    """(goals,) Spearman rho per goal of the column's reward against minus the true task distance (the hand's when
    vary is 'hand'). A reward constant over a goal's scenes ranks nothing: its rho is 0."""
    env = column.make_env()
    task = column.config.task
    rhos = np.empty(len(hands))
    try:
        for goal in range(len(hands)):
            env.reset(seed=seed + goal)
            rewards, distances = [], []
            for sample in range(hands.shape[1]):
                info = env.pose_scene(hands[goal, sample], None if pucks is None else pucks[goal, sample])
                rewards.append(float(env.observer.reward(env.observe(), env.desired_goal)))
                distances.append(info['hand_distance'] if vary == 'hand' else task_distance(task, info))
            constant = np.ptp(rewards) == 0
            rhos[goal] = 0.0 if constant else spearman_rho(-np.array(distances), rewards)
    finally:
        env.close()
    return rhos


def draw_step_scenes(scenes: int, seed: int, step_m: float = STEP_M) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Push scenes of the steepness measure: hands, pucks and steps, each (scenes, 2). A step is step_m in a random
    direction; the hand stays in the workspace and clear of the puck whether it or the puck takes it."""
    rng = np.random.default_rng([seed, STEP_STREAM])
    low, high = workspace_bounds()
    rows = []
    while len(rows) < scenes:
        puck = uniform_xy(rng, PUCK_HALF_EXTENT_M)
        hand = hand_start_away_from(rng, puck)
        angle = rng.uniform(0, 2 * np.pi)
        step = step_m * np.array([np.cos(angle), np.sin(angle)])
        clear = min(np.linalg.norm(hand + step - puck), np.linalg.norm(hand - puck - step)) >= HAND_CLEARANCE_M
        if clear and np.all((low <= hand + step) & (hand + step <= high)):
            rows.append((hand, puck, step))
    hands, pucks, steps = (np.array(part) for part in zip(*rows))
    return hands, pucks, steps


def step_ratios(column: RewardColumn, hands: np.ndarray, pucks: np.ndarray, steps: np.ndarray, seed: int
                ) -> np.ndarray:
    """(scenes,) per scene: how far the column's reward distance moves when the puck takes the step, over how far
    when the hand takes it (nan, undefined, when the hand's step does not move it at all). The env's start scene
    (seed) is the CC-VAE's context."""
    env = column.make_env()

    def observed(hand: np.ndarray, puck: np.ndarray) -> np.ndarray:
        env.pose_scene(hand, puck)
        return env.observe()

    ratios = np.empty(len(hands))
    try:
        env.reset(seed=seed)
        for scene, (hand, puck, step) in enumerate(zip(hands, pucks, steps)):
            still = observed(hand, puck)
            hand_move = -float(env.observer.reward(observed(hand + step, puck), still))
            puck_move = -float(env.observer.reward(observed(hand, puck + step), still))
            ratios[scene] = puck_move / hand_move if hand_move > 0 else np.nan
    finally:
        env.close()
    return ratios


def rho_summary(rhos: np.ndarray) -> dict[str, float]:
    """median rho with its bootstrap 95 % CI, mean rho, and the fraction of goals with rho > FAITHFUL_RHO with
    its Wilson 95 % CI."""
    faithful = int(np.sum(rhos > FAITHFUL_RHO))
    median_low, median_high = bootstrap_interval(rhos[None])
    faithful_low, faithful_high = wilson_interval(faithful, len(rhos))
    return {'goals': float(len(rhos)), 'rho_median': float(np.median(rhos)), 'rho_median_ci_low': median_low,
            'rho_median_ci_high': median_high, 'rho_mean': float(np.mean(rhos)),
            'faithful_fraction': faithful / len(rhos), 'faithful_fraction_ci_low': faithful_low,
            'faithful_fraction_ci_high': faithful_high}


def step_summary(ratios: np.ndarray) -> dict[str, Any]:
    """Median puck / hand step ratio with its bootstrap 95 % CI over the scenes where it is defined (None where it
    is nowhere), and the ratios (undefined ones as null)."""
    defined = ratios[np.isfinite(ratios)]
    median, (low, high) = (float(np.median(defined)), bootstrap_interval(defined[None])) if len(defined) else (
        None, (None, None))
    return {'step_ratio_median': median, 'step_ratio_ci_low': low, 'step_ratio_ci_high': high,
            'step_ratio_per_scene': [float(ratio) if np.isfinite(ratio) else None for ratio in ratios]}


def evaluate_rewards(columns: Sequence[RewardColumn], goals: int, samples: int, seed: int = EVAL_SEED,
                     vary: str = 'both') -> dict[str, np.ndarray]:
    """{column label: (goals,) rho per goal}, every column on the same goals and scenes."""
    if goals < 1 or samples < 3:
        raise ValueError(f'need goals >= 1 and samples >= 3 (a rank correlation needs 3), got {goals}, {samples}')
    tasks = {column.config.task for column in columns}
    if len(tasks) != 1:
        raise ValueError(f'the columns must share one task, got {sorted(tasks)}')
    task = tasks.pop()
    check_probe(task, vary)
    goal_states = held_out_goal_states(task, goals, seed) if vary != 'both' else ()
    hands, pucks = draw_scenes(task, goals, samples, seed, vary, goal_states)
    return {column.label: reward_rhos(column, hands, pucks, seed, vary) for column in columns}


def add_eval_reward_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--task', choices=TASKS, default='reach')
    parser.add_argument('--vae', type=Path, action='append', default=None, metavar='CHECKPOINT',
                        help='a betavae or ccvae checkpoint of the task camera; repeat for more columns (default: '
                             'the shipped ssl_robot/checkpoints/rl_<task>_vae.safetensors, if there is one)')
    parser.add_argument('--rig', default='',
                        help="the task camera's rig (sim/rigs/<rig>.yaml, or a rig file) for the VAE and pixel-MSE "
                             "columns, with --vae checkpoints trained on its images (default: the task's own)")
    parser.add_argument('--no-scene-vaes', action='store_true',
                        help='leave out the shipped scene-camera VAEs (betavae, ccvae on front_left)')
    parser.add_argument('--vary', choices=PROBES, default='both',
                        help="push: what moves between a goal's scenes; 'puck' holds the hand at the goal's, "
                             "'hand' the puck (default both)")
    parser.add_argument('--goals', type=int, default=20, help='held-out goals (default 20)')
    parser.add_argument('--samples', type=int, default=30, help='random scenes scored per goal (default 30)')
    parser.add_argument('--seed', type=int, default=EVAL_SEED,
                        help=f'seed of the first goal; goal i uses seed + i (default {EVAL_SEED}, held out)')
    parser.add_argument('--out', type=Path, default=None, help='report directory (default: eval-reward-<time>)')


def run_eval_reward(args: argparse.Namespace) -> int:
    from ssl_robot.rl.report import write_faithfulness_report  # matplotlib loads only to write the report
    default_vae = default_vae_checkpoint(args.task)
    vaes = args.vae if args.vae is not None else [default_vae] if default_vae.is_file() else []
    columns = default_columns(args.task, vaes, scene_vaes=not args.no_scene_vaes, rig=args.rig)
    rhos = evaluate_rewards(columns, args.goals, args.samples, args.seed, args.vary)
    ratios = {}
    if args.task == 'push':
        scenes = draw_step_scenes(STEP_SCENES, args.seed)
        ratios = {column.label: step_ratios(column, *scenes, args.seed) for column in columns}
    out = args.out or Path(f'eval-reward-{datetime.datetime.now():%Y%m%d-%H%M%S}')
    files = write_faithfulness_report(out, args.task, {label: (rho, rho_summary(rho)) for label, rho in rhos.items()},
                                      samples=args.samples, seed=args.seed, vary=args.vary, step_ratios=ratios)
    print(files.markdown.read_text(), end='')
    return 0
