"""RL evaluation: the summary statistics against brute force and known values, policies on the sim env (a scripted
oracle reaches every goal, a random policy few), the rl eval report from fake runs, and eval-reward's rank
correlations."""

from __future__ import annotations

import argparse
import json
import sys
import types
from math import comb
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from ssl_robot.rl.evaluation import (EVAL_SEED, RANDOM_COLUMN, EpisodeRecord, EvalResult, RunEvaluation,
                                     add_eval_arguments, bootstrap_interval, column_label, evaluate_policy,
                                     pooled_summary, random_policy, relabel_label, run_eval, wilson_interval)
from ssl_robot import cli
from ssl_robot.rl.observers import default_vae_checkpoint
from ssl_robot.rl.report import write_eval_report, write_faithfulness_report
from ssl_robot.rl.reward_faithfulness import (STEP_M, RewardColumn, default_columns, draw_scenes, draw_step_scenes,
                                             evaluate_rewards, held_out_goal_states, rho_summary, step_ratios)
from ssl_robot.rl.tasks import HAND_CLEARANCE_M, EnvConfig, GoalState, workspace_bounds
from ssl_robot.train.report import PNG_SIGNATURE

REACH = EnvConfig(task='reach', mode='state', goal_source='state', episode_steps=30)


def episode(final: float, hand: float | None = None, success_m: float = 0.05) -> EpisodeRecord:
    """A hand-made episode whose task distance falls linearly to final."""
    return EpisodeRecord(goal=GoalState((0.6, 0.0)), final_hand_distance=final if hand is None else hand,
                         final_object_distance=None if hand is None else final, success=final < success_m,
                         start_reward=-0.2, end_reward=-final, distances=np.linspace(0.2, final, 5))


def oracle_act(observation: dict[str, np.ndarray]) -> np.ndarray:
    """Straight to the goal: in state mode the observation and the goal are the true positions, and an action
    of 1 is a full action_step_m."""
    return np.clip((observation['desired_goal'] - observation['achieved_goal']) / REACH.action_step_m, -1, 1)


# --- statistics ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('successes, trials, expected', [
    (8, 10, (0.4902, 0.9433)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (25, 50, (0.3664, 0.6336))])
def test_wilson_interval_matches_known_values(successes, trials, expected):
    assert wilson_interval(successes, trials) == pytest.approx(expected, abs=5e-5)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_bootstrap_interval_of_the_median_matches_the_exact_bootstrap_distribution():
    # 7 values: the median of a resample is the k-th value when at least 4 of the 7 draws are among the first k,
    # so its exact CDF is a binomial tail; the percentile interval is where that CDF crosses 2.5 % and 97.5 %.
    values = np.array([0.01, 0.03, 0.04, 0.08, 0.15, 0.2, 0.4])
    cdf = [sum(comb(7, j) * (k / 7) ** j * (1 - k / 7) ** (7 - j) for j in range(4, 8)) for k in range(1, 8)]
    exact_low = values[np.searchsorted(cdf, 0.025)]
    exact_high = values[np.searchsorted(cdf, 0.975)]
    assert (exact_low, exact_high) == (0.03, 0.2)
    assert bootstrap_interval(values[None]) == (exact_low, exact_high)
    assert bootstrap_interval(values[None]) == bootstrap_interval(values[None]), 'the bootstrap rng is fixed'


def test_summary_of_hand_made_episodes():
    finals = [0.01, 0.02, 0.04, 0.06, 0.3]
    result = EvalResult('reach', tuple(episode(final) for final in finals))
    summary = result.summary()
    assert summary['episodes'] == 5
    assert summary['final_distance_median'] == pytest.approx(0.04)
    assert summary['final_distance_mean'] == pytest.approx(np.mean(finals))
    assert summary['success_rate'] == pytest.approx(3 / 5)
    assert (summary['success_rate_ci_low'], summary['success_rate_ci_high']) == wilson_interval(3, 5)
    assert summary['final_distance_median_ci_low'] <= 0.04 <= summary['final_distance_median_ci_high']
    assert 'hand_final_distance_median' not in summary and 'seeds' not in summary
    assert all(isinstance(value, float) for value in summary.values())


def test_push_summary_has_the_hand_distance_and_seeds_pool_as_mean_of_medians():
    first = EvalResult('push', tuple(episode(final, hand=0.1) for final in (0.02, 0.04, 0.2)))
    second = EvalResult('push', tuple(episode(final, hand=0.3) for final in (0.06, 0.08, 0.1)))
    pooled = pooled_summary([first, second])
    assert first.summary()['hand_final_distance_median'] == pytest.approx(0.1)
    assert pooled['seeds'] == 2 and pooled['episodes'] == 3
    assert pooled['final_distance_median'] == pytest.approx((0.04 + 0.08) / 2)
    assert pooled['hand_final_distance_median'] == pytest.approx(0.2)
    assert pooled['success_rate'] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match='same'):
        pooled_summary([first, EvalResult('push', first.episodes[:2])])


@pytest.mark.parametrize('prior, future, label', [(0, 0, 'none'), (0, 0.4, 'future'), (0.5, 0.4, 'future + prior')])
def test_relabel_label(prior, future, label):
    assert relabel_label(prior, future) == label


# --- policies on the env -------------------------------------------------------------------------------------

def test_scripted_oracle_reaches_every_goal_and_the_random_policy_few():
    oracle = evaluate_policy(oracle_act, REACH, episodes=5, seed=EVAL_SEED)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    random = evaluate_policy(random_policy(action_space, seed=0), REACH, episodes=5, seed=EVAL_SEED)
    assert oracle.summary()['success_rate'] == 1.0
    assert oracle.summary()['final_distance_median'] < 0.01
    assert random.summary()['success_rate'] <= 0.4
    assert [e.goal for e in oracle.episodes] == [e.goal for e in random.episodes], 'one set of held-out goals'
    first = oracle.episodes[0]
    assert len(first.distances) == REACH.episode_steps + 1
    assert first.end_reward > first.start_reward, 'the oracle reward rises as the hand nears the goal'


# --- the rl eval report --------------------------------------------------------------------------------------

def fake_evaluation(column: str, seed: int, finals: list[float], relabel: str = 'future + prior',
                    curve_scale: float | None = 1.0) -> RunEvaluation:
    curve = None if curve_scale is None else [
        {'env_steps': steps, 'final_distance_median': curve_scale * (0.2 - steps * 1e-5) + 0.01 * seed}
        for steps in (1000, 5000, 10000)]
    return RunEvaluation(column=column, relabel=relabel, env=REACH, seed=seed, run=Path(f'runs/{column}-{seed}'),
                         result=EvalResult('reach', tuple(episode(final) for final in finals)), curve=curve)


def test_eval_report_from_fake_runs(tmp_path):
    evaluations = [fake_evaluation('oracle (state)', seed, [0.01, 0.02, 0.03 + 0.01 * seed]) for seed in (0, 1, 2)]
    evaluations += [fake_evaluation('RIG (beta-VAE latent)', 0, [0.04, 0.06, 0.1], relabel='future'),
                    fake_evaluation('RIG (beta-VAE latent)', 0, [0.03, 0.05, 0.08], curve_scale=0.5),
                    fake_evaluation(RANDOM_COLUMN, 0, [0.1, 0.15, 0.2], relabel='', curve_scale=None)]
    files = write_eval_report(tmp_path / 'report', evaluations, eval_seed=EVAL_SEED)

    report = json.loads(files.json.read_text())
    columns = {column['column']: column for column in report['columns']}
    assert list(columns) == ['oracle (state), relabel future + prior', 'RIG (beta-VAE latent), relabel future',
                             'RIG (beta-VAE latent), relabel future + prior', RANDOM_COLUMN]
    oracle = columns['oracle (state), relabel future + prior']
    assert oracle['seeds'] == 3 and len(oracle['per_seed']) == 3
    assert oracle['final_distance_median'] == pytest.approx(0.02)
    assert report['curves']['oracle (state), relabel future + prior']['env_steps'] == [1000, 5000, 10000]
    assert report['curves']['oracle (state), relabel future + prior']['min'][0] == pytest.approx(0.19)
    assert RANDOM_COLUMN not in report['curves']

    markdown = files.markdown.read_text()
    assert '## Relabelling ablation' in markdown and '## Every seed' in markdown
    assert '| oracle (state), relabel future + prior | 3 | 3 | 0.020 [' in markdown
    assert '![curves](curves.png)' in markdown
    assert (tmp_path / 'report' / 'curves.png').read_bytes().startswith(PNG_SIGNATURE)


def test_a_policy_observing_another_mode_has_its_own_column_right_after_its_goals_column(tmp_path):
    push = {'task': 'push', 'mode': 'latent', 'vae_checkpoint': str(default_vae_checkpoint('push'))}
    assert column_label(EnvConfig(**push)) == 'RIG (beta-VAE latent)'
    hybrid = column_label(EnvConfig(**push, policy_observation='state'))
    assert hybrid == 'RIG (beta-VAE latent), observing state'
    evaluations = [fake_evaluation(column, 0, [0.05, 0.1]) for column in
                   (RANDOM_COLUMN, hybrid, 'pixel-MSE', 'RIG (beta-VAE latent)', 'oracle (state)')]
    report = json.loads(write_eval_report(tmp_path, evaluations, eval_seed=EVAL_SEED).json.read_text())
    assert [column['column'] for column in report['columns']] == [
        'oracle (state)', 'pixel-MSE', 'RIG (beta-VAE latent)', hybrid, RANDOM_COLUMN]


def test_rl_eval_command_on_stand_in_policies(tmp_path, monkeypatch, capsys):
    """run_eval end to end, with ssl_robot.rl.policy stood in for by scripted state-mode policies."""
    runs = []
    for seed in (0, 1):
        run = tmp_path / f'oracle-{seed}'
        run.mkdir()
        (run / 'curve.json').write_text(json.dumps([{'env_steps': 100, 'final_distance_median': 0.1 - seed / 100},
                                                    {'env_steps': 200, 'final_distance_median': 0.02}]))
        runs.append(run)

    def load_policy(path: Path):
        config = types.SimpleNamespace(env=REACH, seed=int(path.parent.name[-1]),
                                       relabel=types.SimpleNamespace(prior_fraction=0.5, future_fraction=0.4))
        return types.SimpleNamespace(config=config, act=lambda observation, deterministic: oracle_act(observation))

    monkeypatch.setitem(sys.modules, 'ssl_robot.rl.policy', types.SimpleNamespace(load_policy=load_policy))
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    args = parser.parse_args([*map(str, runs), '--episodes', '3', '--random', '--out', str(tmp_path / 'out')])
    assert run_eval(args) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    by_column = {column['column']: column for column in report['columns']}
    assert by_column['oracle (state)']['seeds'] == 2 and by_column['oracle (state)']['success_rate'] == 1.0
    assert by_column[RANDOM_COLUMN]['seeds'] == 2
    assert report['curves']['oracle (state)']['mean'] == pytest.approx([0.095, 0.02])
    assert 'report:' in capsys.readouterr().out

    again = tmp_path / 'again-0'
    again.mkdir()
    with pytest.raises(ValueError, match='must differ in seed'):
        run_eval(parser.parse_args([str(runs[0]), str(again)]))


# --- eval-reward ---------------------------------------------------------------------------------------------

def test_reward_rhos_of_pixel_are_rank_correlations_and_the_oracle_is_exactly_faithful():
    rhos = evaluate_rewards(default_columns('reach', [], scene_vaes=False), goals=2, samples=6)
    assert list(rhos) == ['oracle (state)', 'pixel-MSE (task camera)']
    assert np.all(rhos['oracle (state)'] == 1.0), 'the oracle reward is minus the true hand distance'
    pixel = rhos['pixel-MSE (task camera)']
    assert pixel.shape == (2,) and np.all(np.isfinite(pixel)) and np.all(np.abs(pixel) <= 1)
    summary = rho_summary(pixel)
    assert summary['rho_median'] == pytest.approx(np.median(pixel))
    assert summary['rho_median_ci_low'] <= summary['rho_median'] <= summary['rho_median_ci_high']


def test_push_scenes_keep_the_hand_clear_of_the_puck_and_repeat_with_the_seed():
    hands, pucks = draw_scenes('push', goals=3, samples=5, seed=7)
    assert hands.shape == pucks.shape == (3, 5, 2)
    assert np.all(np.linalg.norm(hands - pucks, axis=-1) >= HAND_CLEARANCE_M)
    again, _ = draw_scenes('push', goals=3, samples=5, seed=7)
    assert np.array_equal(hands, again)
    assert draw_scenes('reach', goals=1, samples=3, seed=7)[1] is None


@pytest.mark.parametrize('vary', ['puck', 'hand'])
def test_push_probes_hold_one_part_at_the_goal_and_the_oracle_ranks_the_other_exactly(vary):
    goal_states = held_out_goal_states('push', goals=2, seed=EVAL_SEED)
    hands, pucks = draw_scenes('push', goals=2, samples=6, seed=EVAL_SEED, vary=vary, goal_states=goal_states)
    held, moved = (hands, pucks) if vary == 'puck' else (pucks, hands)
    for goal, state in enumerate(goal_states):
        at_goal = state.hand_xy if vary == 'puck' else state.object_xy
        assert np.allclose(held[goal], at_goal) and np.ptp(moved[goal], axis=0).min() > 0
    assert np.all(np.linalg.norm(hands - pucks, axis=-1) >= HAND_CLEARANCE_M)
    # With the other part at its goal, the oracle's reward is minus the moved part's distance, up to how far the
    # posed hand settles from where it was put (millimetres).
    rhos = evaluate_rewards(default_columns('push', [], scene_vaes=False)[:1], goals=2, samples=6, vary=vary)
    assert np.all(rhos['oracle (state)'] > 0.9)


def test_step_scenes_keep_the_hand_clear_and_in_the_workspace_whichever_part_moves():
    hands, pucks, steps = draw_step_scenes(40, seed=3)
    assert hands.shape == pucks.shape == steps.shape == (40, 2)
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), STEP_M)
    assert len({tuple(np.round(step / STEP_M, 1)) for step in steps}) > 10, 'the steps point every way'
    for hand, puck in ((hands, pucks), (hands + steps, pucks), (hands, pucks + steps)):
        assert np.all(np.linalg.norm(hand - puck, axis=1) >= HAND_CLEARANCE_M)
    low, high = workspace_bounds()
    assert np.all((low <= hands + steps) & (hands + steps <= high))
    assert np.array_equal(draw_step_scenes(40, seed=3)[2], steps)


@pytest.mark.parametrize('puck_weight', [1.0, 0.3])
def test_the_oracles_step_ratio_is_its_puck_weight(puck_weight):
    """A 5 cm move of either part moves the oracle's state by 5 cm, the puck's weighed by state_puck_weight (up to
    the millimetres the posed hand settles by)."""
    column = RewardColumn('oracle', EnvConfig(task='push', mode='state', goal_source='state',
                                              state_puck_weight=puck_weight))
    ratios = step_ratios(column, *draw_step_scenes(6, seed=3), seed=EVAL_SEED)
    np.testing.assert_allclose(ratios, puck_weight, rtol=0.1)


@pytest.mark.parametrize('rig, low, high', [('task_push_oblique', 1.0, np.inf), ('task_push', 0.0, 0.5)])
def test_only_the_oblique_push_camera_shows_a_puck_move_as_much_as_a_hand_move(rig, low, high):
    """From above (task_push) the arm covers half the image and a hand move changes several times the pixels of a
    puck move; from the tray's far side (task_push_oblique) it does not."""
    column = RewardColumn('pixel', EnvConfig(task='push', mode='pixel', goal_source='state', rig=rig))
    median = float(np.nanmedian(step_ratios(column, *draw_step_scenes(12, seed=3), seed=EVAL_SEED)))
    assert low <= median <= high, median


def test_the_faithfulness_report_gives_the_step_ratios_when_it_has_them(tmp_path):
    rhos = {'a': np.array([0.5, 0.9]), 'b': np.array([0.1, 0.2])}
    columns = {label: (rho, rho_summary(rho)) for label, rho in rhos.items()}
    ratios = {'a': np.array([1.0, 1.0, 1.0]), 'b': np.array([0.2, 0.4, np.nan])}
    files = write_faithfulness_report(tmp_path / 'with', 'push', columns, samples=3, seed=0, step_ratios=ratios)
    markdown = files.markdown.read_text()
    assert 'puck / hand step [95 % CI]' in markdown
    row_a = next(line for line in markdown.splitlines() if line.startswith('| a |'))
    assert row_a.endswith('| 1.000 [1.000, 1.000] |')
    payload = json.loads((tmp_path / 'with' / 'report.json').read_text())
    assert payload['columns'][1]['step_ratio_median'] == pytest.approx(0.3), 'the undefined ratio is left out'
    assert payload['columns'][1]['step_ratio_per_scene'] == [0.2, 0.4, None]
    undefined = write_faithfulness_report(tmp_path / 'undefined', 'push', columns, samples=3, seed=0,
                                          step_ratios={'a': ratios['a'], 'b': np.full(3, np.nan)})
    assert '| n/a |' in undefined.markdown.read_text()
    plain = write_faithfulness_report(tmp_path / 'without', 'reach', columns, samples=3, seed=0)
    assert 'step' not in plain.markdown.read_text()


def test_vae_columns_of_two_runs_are_told_apart_and_one_checkpoint_twice_is_refused(tmp_path):
    shipped = default_vae_checkpoint('push')
    runs = [tmp_path / run / 'model.safetensors' for run in ('a', 'b')]
    for run in runs:
        run.parent.mkdir()
        run.write_bytes(shipped.read_bytes())
    labels = [column.label for column in default_columns('push', [shipped, *runs], scene_vaes=False)]
    assert labels[1:4] == ['RL betavae latent (rl_push_vae.safetensors)', f'RL betavae latent ({runs[0]})',
                           f'RL betavae latent ({runs[1]})']
    with pytest.raises(ValueError, match='each --vae checkpoint may be given once'):
        default_columns('push', [runs[0], runs[0]], scene_vaes=False)


def test_reach_has_only_the_both_probe():
    with pytest.raises(ValueError, match="vary must be one of .* 'both' for reach, got 'puck'"):
        draw_scenes('reach', goals=1, samples=3, seed=7, vary='puck')
    with pytest.raises(ValueError, match='one goal state per goal'):
        draw_scenes('push', goals=2, samples=3, seed=7, vary='hand')


@pytest.mark.slow
def test_eval_reward_command_with_task_and_scene_camera_vaes(tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / 'ssl_robot' / 'checkpoints' / 'betavae.safetensors'
    status = cli.main(['eval-reward', '--goals', '2', '--samples', '4', '--vae', str(shipped),
                       '--out', str(tmp_path / 'out')])
    assert status == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    labels = [column['column'] for column in report['columns']]
    assert labels == ['oracle (state)', 'RL betavae latent (betavae.safetensors)', 'pixel-MSE (task camera)',
                      'scene beta-VAE (front_left)', 'scene CC-VAE (front_left)']
    for column in report['columns']:
        assert len(column['rho_per_goal']) == 2 and all(-1 <= rho <= 1 for rho in column['rho_per_goal'])
    assert (tmp_path / 'out' / 'rho.png').read_bytes().startswith(PNG_SIGNATURE)
    assert '| oracle (state) | 1.000 [1.000, 1.000] | 1.000 | 100% [' in capsys.readouterr().out


def test_the_task_camera_columns_see_through_the_rig_given():
    shipped = default_vae_checkpoint('push')
    columns = default_columns('push', [shipped], scene_vaes=False, rig='task')
    assert [(column.config.mode, column.config.rig) for column in columns] == [
        ('state', ''), ('latent', 'task'), ('pixel', 'task')]
    env = columns[2].make_env()
    try:
        assert env.sim_config.cameras[0].fov_deg == 30.0  # sim/rigs/task.yaml's, not task_push's 18
    finally:
        env.close()
