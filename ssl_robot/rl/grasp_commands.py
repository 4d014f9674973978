"""The instance-grasping commands: `ssl-robot rl grasp-eval` (ssl_robot.rl.instance_grasping's harness over
held-out trays) and `ssl-robot rl grasp-train` (ssl_robot.rl.grasp_learning)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path
from typing import Callable

import torch

from ssl_robot.atomic import write_atomic
from ssl_robot.inference.model_holder import LoadedModel, default_checkpoint, set_torch_threads
from ssl_robot.rl.evaluation import EVAL_SEED
from ssl_robot.rl.grasp_learning import load_grasp_config, train_grasp_policy
from ssl_robot.rl.grasp_policy import load_grasp_policy
from ssl_robot.rl.instance_grasping import (GraspPolicy, GraspTrial, HeatmapArgmax, check_camera, check_trials,
                                            evaluate, format_table, indiscriminate)
from ssl_robot.sim.config import load_sim_config

# ---------------------------------------------------------------------------------------- ssl-robot rl grasp-eval

POLICIES = ('indiscriminate', 'heatmap_argmax', 'learned')
DEFAULT_TRIALS = 30
PROGRESS_EVERY = 25
DEFAULT_CAMERA = 'front_left'
"""The grasp2vec node's scene camera (config/grasp2vec.yaml), whose s_pre images the shipped checkpoint learnt from."""


def add_grasp_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--policy', dest='policies', nargs='+', default=list(POLICIES), metavar='POLICY',
                        help=f'policies to evaluate: {", ".join(POLICIES)} (default: all)')
    parser.add_argument('--object-set', dest='object_sets', nargs='+', default=['random_urdfs'], metavar='NAME',
                        help='object sets of sim/objects/ (default random_urdfs; random_urdfs_12 holds the objects '
                             'the shipped Grasp2Vec was trained on)')
    parser.add_argument('--trials', type=int, default=DEFAULT_TRIALS,
                        help=f'scored trials per policy and object set (default {DEFAULT_TRIALS})')
    parser.add_argument('--seed', type=int, default=EVAL_SEED,
                        help=f'tray seed of the first trial, trial i using seed + i (default {EVAL_SEED}; must be '
                             f'>= {EVAL_SEED}, far from any collection seed)')
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='Grasp2Vec checkpoint of heatmap_argmax (default: the shipped one)')
    parser.add_argument('--grasp-policy', type=Path, default=None, metavar='FILE',
                        help='grasp policy of learned (default: the shipped one; rl grasp-train writes '
                             'RUN_DIR/grasp_policy.safetensors)')
    parser.add_argument('--camera', default=DEFAULT_CAMERA,
                        help=f'scene camera the policy sees (default {DEFAULT_CAMERA})')
    parser.add_argument('--json', type=Path, default=None, metavar='FILE', help='also write every trial as JSON')


def make_policy(name: str, checkpoint: Path | None, grasp_policy: Path | None) -> GraspPolicy:
    if name == 'indiscriminate':
        return indiscriminate
    if name == 'heatmap_argmax':
        return HeatmapArgmax(LoadedModel(checkpoint or default_checkpoint('grasp2vec'), 'grasp2vec', device='cpu'))
    if name == 'learned':
        return load_grasp_policy(grasp_policy, checkpoint, device=torch.device('cpu'))
    raise ValueError(f'unknown policy {name!r}; known: {", ".join(POLICIES)}')


def _progress_printer(label: str, every: int = PROGRESS_EVERY) -> Callable[[GraspTrial | None], None]:
    """A progress callback that prints a line to stderr every `every` trays, so that a long run shows it is alive."""
    trays = itertools.count(1)

    def progress(_: GraspTrial | None) -> None:
        done = next(trays)
        if done % every == 0:
            print(f'{label}: {done} trays', file=sys.stderr, flush=True)
    return progress


def run_grasp_eval(args: argparse.Namespace) -> int:
    for name in args.policies:
        if name not in POLICIES:
            raise ValueError(f'unknown policy {name!r}; known: {", ".join(POLICIES)}')
    check_trials(args.trials, args.seed)
    if args.seed < EVAL_SEED:
        raise ValueError(f'--seed must be >= {EVAL_SEED} (held-out trays), got {args.seed}')
    configs = [load_sim_config(object_set=name) for name in args.object_sets]
    for config in configs:
        check_camera(config, args.camera)
    set_torch_threads(1)
    evaluations = []
    for name in args.policies:
        policy = make_policy(name, args.checkpoint, args.grasp_policy)
        for config in configs:
            evaluation = evaluate(config, name, policy, args.trials, args.seed, args.camera,
                                  progress=_progress_printer(f'{name} on {config.object_set}'))
            hits, count, (low, high) = evaluation.rate('goal')
            print(f'{name} on {config.object_set}: goal object grasped {hits} of {count} [{low:.2f}, {high:.2f}]',
                  flush=True)
            evaluations.append(evaluation)
    print(format_table(evaluations))
    if args.json is not None:
        write_atomic(args.json, json.dumps([dataclasses.asdict(e) for e in evaluations], indent=1) + '\n')
    return 0


# --------------------------------------------------------------------------------------- ssl-robot rl grasp-train

def add_grasp_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', type=Path, metavar='FILE', help='YAML file of GraspTrainConfig settings '
                        '(config/grasp/grasp.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a setting after --config, e.g. --set trays=50 (value read as YAML; repeatable)')
    parser.add_argument('--out', type=Path, metavar='RUN_DIR', required=True,
                        help='run directory: grasp attempts, config, metrics and grasp_policy.safetensors')


def run_grasp_train(args: argparse.Namespace) -> int:
    return train_grasp_policy(load_grasp_config(args.config, args.overrides), args.out)
