"""How well goal-reaching policies reach held-out true goals: `ssl-robot rl eval RUN [RUN ...]`.

    result = evaluate_policy(act, EnvConfig(task='reach', mode='latent'), episodes=50, seed=EVAL_SEED)
    result.summary()   # final_distance_median [95 % CI], success_rate [95 % CI], ...

Every episode's goal is a true state drawn by the env from its seed (goal_source 'state'), rendered and encoded
as the policy's mode sees goals, so the final true distance to it is measurable whatever the policy observes.
Episode i is reset with seed + i; evaluation seeds start at EVAL_SEED (1_000_000) so that they never coincide with
training seeds, which are small ints plus an env rank. Every policy evaluated with the same seed meets the same
starts and goals, so columns and training seeds are compared on one set of goals.

Runs of one column (mode and VAE method, and the relabelling they were trained with) and different training seeds
are pooled: the figure is the mean over seeds of each seed's median, with a two-level bootstrap interval
(seeds, then goals); the success rate counts every episode of every seed, with a Wilson interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from gymnasium import spaces

from ssl_robot.models.checkpoint import read_checkpoint_header
from ssl_robot.rl.envs import make_env
from ssl_robot.rl.observers import vae_checkpoint_path
from ssl_robot.rl.tasks import EnvConfig, GoalState, task_distance

if TYPE_CHECKING:
    from ssl_robot.rl.config import RLConfig
    from ssl_robot.rl.policy import GoalPolicy

EVAL_SEED = 1_000_000
"""First seed of the held-out goals: far above the training seeds (small ints + env rank)."""
DEFAULT_EPISODES = 50
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
"""The bootstrap's own fixed rng seed: a report's intervals repeat exactly."""
Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
RANDOM_COLUMN = 'random policy'
COLUMN_LABELS = {'state': 'oracle (state)', 'pixel': 'pixel-MSE', 'betavae': 'RIG (beta-VAE latent)',
                 'ccvae': 'CC-RIG (CC-VAE latent)'}
"""Column of a run by its mode, and in latent mode by its VAE method; in report order, the random policy last."""
OBSERVING = ', observing '
"""Joins a column and the mode its policy observes, when that is not the goals' mode."""
POLICY_FILE, CURVE_FILE = 'policy.safetensors', 'curve.json'

Act = Callable[[dict[str, np.ndarray]], np.ndarray]
"""A policy as evaluation calls it: a goal-conditioned observation dict -> a (2,) action."""


# --- statistics ----------------------------------------------------------------------------------------------

def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a success rate: unlike the normal approximation it stays inside [0, 1] and
    is not empty at 0 or `trials` successes, which a good policy on 50 goals often scores."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}')
    rate = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half_width = z / denominator * np.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def mean_of_medians(values: np.ndarray) -> float:
    """The mean over rows (training seeds) of each row's median (over goals)."""
    return float(np.mean(np.median(values, axis=-1)))


def bootstrap_interval(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % percentile bootstrap interval of mean_of_medians(values), values (seeds, goals): each resample draws
    the rows (training seeds) with replacement, then each drawn row's values (goals) with replacement. With one
    row it is the plain bootstrap of the median."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f'bootstrap_interval needs a non-empty (seeds, goals) array, got shape {values.shape}')
    rng = np.random.default_rng(seed)
    seeds, goals = values.shape
    rows = rng.integers(seeds, size=(resamples, seeds, 1))
    resampled = values[rows, rng.integers(goals, size=(resamples, seeds, goals))]
    low, high = np.quantile(np.median(resampled, axis=-1).mean(axis=-1), [0.025, 0.975])
    return float(low), float(high)


# --- episodes ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluation episode, measured in true positions."""

    goal: GoalState
    final_hand_distance: float
    final_object_distance: float | None
    """push only: the puck's final distance to its goal position."""
    success: bool
    """The task distance ended below EnvConfig.success_distance_m."""
    start_reward: float
    """The observer's reward of the first observation, before any action."""
    end_reward: float
    distances: np.ndarray
    """Task distance at the reset and after each step, (episode_steps + 1,)."""

    @property
    def final_distance(self) -> float:
        return float(self.distances[-1])


@dataclass(frozen=True)
class EvalResult:
    """The episodes of one policy on held-out goals."""

    task: str
    episodes: tuple[EpisodeRecord, ...]

    def summary(self) -> dict[str, float]:
        """episodes, final_distance_median with its bootstrap 95 % CI (_ci_low, _ci_high), final_distance_mean,
        success_rate with its Wilson 95 % CI, start/end reward means, and for push hand_final_distance_median.
        Final distance: the hand's for reach, the puck's for push."""
        summary = pooled_summary([self])
        del summary['seeds']
        return summary


def pooled_summary(results: Sequence[EvalResult]) -> dict[str, float]:
    """The figures of one column over its training seeds' results (see the module docstring); one result gives
    its own summary. Every result must come from the same goals (the same seed and episodes)."""
    counts = {len(result.episodes) for result in results}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f'results to pool must hold one same, non-zero number of episodes, got {sorted(counts)}')
    finals = _per_seed(results, 'final_distance')
    successes = sum(episode.success for result in results for episode in result.episodes)
    trials = sum(len(result.episodes) for result in results)
    median_low, median_high = bootstrap_interval(finals)
    success_low, success_high = wilson_interval(successes, trials)
    summary = {'seeds': float(len(results)), 'episodes': float(counts.pop()),
               'final_distance_median': mean_of_medians(finals),
               'final_distance_median_ci_low': median_low, 'final_distance_median_ci_high': median_high,
               'final_distance_mean': float(np.mean(finals)),
               'success_rate': successes / trials, 'success_rate_ci_low': success_low,
               'success_rate_ci_high': success_high,
               'start_reward_mean': float(np.mean(_per_seed(results, 'start_reward'))),
               'end_reward_mean': float(np.mean(_per_seed(results, 'end_reward')))}
    if results[0].task == 'push':
        summary['hand_final_distance_median'] = mean_of_medians(_per_seed(results, 'final_hand_distance'))
    return summary


def _per_seed(results: Sequence[EvalResult], name: str) -> np.ndarray:
    """(seeds, episodes) array of one EpisodeRecord figure."""
    return np.array([[getattr(episode, name) for episode in result.episodes] for result in results], dtype=float)


def evaluate_policy(act: Act, env_config: EnvConfig, episodes: int, seed: int = EVAL_SEED) -> EvalResult:
    """Run `episodes` episodes of act in one env of env_config, whose goals are true states drawn from the
    held-out seeds seed, seed + 1, ... (goal_source is forced to 'state')."""
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    config = dataclasses.replace(env_config, goal_source='state')
    env = make_env(config)
    records = []
    try:
        for episode in range(episodes):
            observation, info = env.reset(seed=seed + episode)
            start_reward = float(env.compute_reward(observation['achieved_goal'], observation['desired_goal'], info))
            reward, distances, done = start_reward, [task_distance(config.task, info)], False
            while not done:
                observation, reward, terminated, truncated, info = env.step(act(observation))
                distances.append(task_distance(config.task, info))
                done = terminated or truncated
            records.append(EpisodeRecord(goal=env.goal_state, final_hand_distance=info['hand_distance'],
                                         final_object_distance=info.get('object_distance'),
                                         success=bool(info['is_success']), start_reward=start_reward,
                                         end_reward=float(reward), distances=np.array(distances)))
    finally:
        env.close()
    return EvalResult(config.task, tuple(records))


def random_policy(action_space: spaces.Box, seed: int) -> Act:
    """Actions drawn uniformly from action_space, whatever the observation: the 'random policy' column."""
    rng = np.random.default_rng(seed)

    def act(observation: dict[str, np.ndarray]) -> np.ndarray:
        return rng.uniform(action_space.low, action_space.high).astype(action_space.dtype)
    return act


# --- runs and columns ----------------------------------------------------------------------------------------

def column_label(env_config: EnvConfig) -> str:
    """The report column of a policy trained in env_config: its mode, in latent mode its VAE's method, and what the
    policy observes when that is not its goals (EnvConfig.policy_observation)."""
    if env_config.mode != 'latent':
        column = COLUMN_LABELS[env_config.mode]
    else:
        column = COLUMN_LABELS[read_checkpoint_header(vae_checkpoint_path(env_config)).method]
    if env_config.observation_mode != env_config.mode:
        column += f'{OBSERVING}{env_config.observation_mode}'
    return column


def relabel_label(prior_fraction: float, future_fraction: float) -> str:
    """The relabelling a run trained with, as the ablation names it: none / future / prior / future + prior."""
    sources = [name for name, fraction in (('future', future_fraction), ('prior', prior_fraction)) if fraction > 0]
    return ' + '.join(sources) or 'none'


@dataclass(frozen=True)
class RunEvaluation:
    """One policy's evaluation, and where it sits in the report."""

    column: str
    relabel: str
    """relabel_label of its training; '' for the random policy, which is not trained."""
    env: EnvConfig
    """The env it was evaluated in (goal_source 'state')."""
    seed: int
    """The training seed (the random policy's action seed)."""
    run: Path | None
    result: EvalResult
    curve: list[dict[str, float]] | None
    """RUN/curve.json: the evaluations made during training, each {'env_steps', **EvalResult.summary()}."""


def read_curve(run: Path) -> list[dict[str, float]] | None:
    """RUN/curve.json, or None when the run has none (a run stopped before its first evaluation)."""
    path = run / CURVE_FILE
    if not path.is_file():
        return None
    try:
        curve = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f'{path} is not JSON: {error}') from None
    if not isinstance(curve, list) or not all(isinstance(point, dict) and 'env_steps' in point
                                              and 'final_distance_median' in point for point in curve):
        raise ValueError(f'{path} must be a list of {{"env_steps": ..., "final_distance_median": ...}} objects')
    return curve


def load_runs(runs: Sequence[Path]) -> list[tuple[Path, GoalPolicy]]:
    """(run, GoalPolicy) of each RUN/policy.safetensors, refused before any evaluation when they mix tasks or
    when two runs of one column share a training seed, which pooling over seeds would count twice."""
    from ssl_robot.rl.policy import load_policy  # SB3 and torch load only when a policy is evaluated
    loaded = [(run, load_policy(run / POLICY_FILE)) for run in runs]
    tasks = sorted({policy.config.env.task for _, policy in loaded})
    if len(tasks) > 1:
        raise ValueError(f'one report compares policies of one task; the runs are of {tasks}')
    seen: dict[tuple[str, str, int], Path] = {}
    for run, policy in loaded:
        key = (column_label(policy.config.env), _relabel_of(policy.config), policy.config.seed)
        if key in seen:
            raise ValueError(f'{seen[key]} and {run} are both {key[0]} (relabel {key[1]}) with training seed '
                             f'{key[2]}: runs pooled in a column must differ in seed')
        seen[key] = run
    return loaded


def _relabel_of(config: RLConfig) -> str:
    return relabel_label(config.relabel.prior_fraction, config.relabel.future_fraction)


def evaluate_run(run: Path, policy: GoalPolicy, episodes: int, seed: int) -> RunEvaluation:
    """Evaluate a run's policy on the held-out goals, in the env its config trained in."""
    config = policy.config
    result = evaluate_policy(lambda observation: policy.act(observation, deterministic=True), config.env,
                             episodes, seed)
    return RunEvaluation(column=column_label(config.env), relabel=_relabel_of(config),
                         env=dataclasses.replace(config.env, goal_source='state'), seed=config.seed, run=run,
                         result=result, curve=read_curve(run))


def evaluate_random(env_config: EnvConfig, episodes: int, seed: int, action_seed: int) -> RunEvaluation:
    """The random policy on the same goals. It ignores observations, so it runs in state mode: the starts and
    goals an env draws from a seed do not depend on the mode, and nothing needs rendering."""
    state_config = dataclasses.replace(env_config, mode='state', vae_checkpoint='', goal_source='state')
    probe = make_env(state_config)
    action_space = probe.action_space
    probe.close()
    result = evaluate_policy(random_policy(action_space, action_seed), state_config, episodes, seed)
    return RunEvaluation(column=RANDOM_COLUMN, relabel='', env=state_config, seed=action_seed, run=None,
                         result=result, curve=None)


# --- command line --------------------------------------------------------------------------------------------

def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('runs', nargs='+', type=Path, metavar='RUN',
                        help='run directories of `ssl-robot rl train` (RUN/policy.safetensors, RUN/config.yaml, '
                             'RUN/curve.json); runs of one mode, VAE and relabelling but different seeds are pooled')
    parser.add_argument('--episodes', type=int, default=DEFAULT_EPISODES,
                        help=f'held-out goals each policy is evaluated on (default {DEFAULT_EPISODES})')
    parser.add_argument('--seed', type=int, default=EVAL_SEED,
                        help=f'seed of the first held-out goal, episode i using seed + i (default {EVAL_SEED}, far '
                             f'from any training seed)')
    parser.add_argument('--out', type=Path, default=None,
                        help="report directory (default: the first RUN's parent / rl-eval-<time>)")
    parser.add_argument('--random', action='store_true',
                        help='add the random policy column, one action seed per training seed of the runs')


def run_eval(args: argparse.Namespace) -> int:
    from ssl_robot.rl.report import write_eval_report  # matplotlib loads only when a report is written
    if args.episodes < 1:
        raise ValueError(f'--episodes must be >= 1, got {args.episodes}')
    evaluations = []
    for run, policy in load_runs(args.runs):
        evaluation = evaluate_run(run, policy, args.episodes, args.seed)
        print(f'{run}: {evaluation.column}, seed {evaluation.seed}: {_summary_line(evaluation.result)}', flush=True)
        evaluations.append(evaluation)
    if args.random:
        for seed in sorted({evaluation.seed for evaluation in evaluations}):
            evaluation = evaluate_random(evaluations[0].env, args.episodes, args.seed, seed)
            print(f'{RANDOM_COLUMN}, seed {seed}: {_summary_line(evaluation.result)}', flush=True)
            evaluations.append(evaluation)
    out = args.out or args.runs[0].resolve().parent / f'rl-eval-{datetime.datetime.now():%Y%m%d-%H%M%S}'
    files = write_eval_report(out, evaluations, eval_seed=args.seed)
    print(f'report: {files.markdown}')
    return 0


def _summary_line(result: EvalResult) -> str:
    summary = result.summary()
    return (f'final distance median {summary["final_distance_median"]:.3f} m, '
            f'success {summary["success_rate"]:.0%} of {len(result.episodes)}')
