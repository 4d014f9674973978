"""ssl_robot.rl.training and `ssl-robot rl train`: envs as the learner sees them, seeds, stops, resume, bad
input, and a short state-mode reach run that must beat the random policy by a wide margin."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import stable_baselines3.common.env_checker
from gymnasium.utils.env_checker import check_env

from ssl_robot.cli import main
from ssl_robot.rl import training
from ssl_robot.rl.config import RLConfig, load_rl_config
from ssl_robot.rl.envs import make_env
from ssl_robot.rl.evaluation import EVAL_SEED, evaluate_policy, random_policy
from ssl_robot.rl.policy import load_policy
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.rl.training import make_vec_env, train

BETAVAE_48PX = 'ssl_robot/checkpoints/betavae.safetensors'
# Short enough for CI (about a minute on a loaded 2-core machine), long enough that every seed tried (0, 1, 2)
# reached 100 % success on the held-out goals; the assertion leaves a wide margin below that.
TRAIN_STEPS = 2000
STATE_REACH = RLConfig(env=EnvConfig(task='reach', mode='state'), n_envs=1, vec_env='dummy', learning_starts=200,
                       total_steps=TRAIN_STEPS, eval_every=0, checkpoint_every=0)


@pytest.mark.parametrize('config', [
    EnvConfig(task='reach', mode='state'),
    EnvConfig(task='push', mode='state'),
    EnvConfig(task='reach', mode='pixel', goal_source='state'),
    EnvConfig(task='reach', mode='latent', vae_checkpoint=BETAVAE_48PX, image_size=48),
], ids=['reach-state', 'push-state', 'reach-pixel', 'reach-latent'])
def test_the_env_passes_gymnasiums_and_sb3s_checkers(config):
    env = make_env(config)
    try:
        check_env(env, skip_render_check=True)
        stable_baselines3.common.env_checker.check_env(env, warn=True)
    finally:
        env.close()


def test_the_registered_ids_make_the_envs():
    # Importing ssl_robot.rl (here through ssl_robot.rl.training) registers them.
    env = gymnasium.make('ssl_robot/TrayPush-v0')
    assert env.unwrapped.config.task == 'push'
    env.close()


def rollout(env, steps: int = 6) -> list[np.ndarray]:
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, env.num_envs, 2))
    trace = [env.reset()['desired_goal']]
    trace += [env.step(action)[0]['observation'] for action in actions]
    return trace


def test_seeds_make_rollouts_repeat_exactly_and_each_env_gets_its_own():
    config = dataclasses.replace(STATE_REACH, n_envs=2)
    traces = []
    for seed in (5, 5, 6):
        env = make_vec_env(config)
        env.seed(seed)
        traces.append(np.array(rollout(env)))
        env.close()
    np.testing.assert_array_equal(traces[0], traces[1])
    assert not np.array_equal(traces[0][:, 0], traces[0][:, 1])
    # Env 1 of seed 5 starts as env 0 of seed 6: env i is seeded with seed + i.
    np.testing.assert_array_equal(traces[0][0, 1], traces[2][0, 0])


def one_line_exit_1(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and error.startswith('ssl-robot rl: error: ')
    return error


def test_bad_input_to_rl_train_is_one_line_and_exit_1(tmp_path, capsys):
    out = ['--out', str(tmp_path / 'run')]
    assert 'unknown env \'TrayFly\'; known envs: TrayReach, TrayPush' in one_line_exit_1(
        ['rl', 'train', 'TrayFly', *out], capsys)
    config = tmp_path / 'bad.yaml'
    config.write_text('total_steps: 100\nlearning_rate: 0.1\n')
    assert f"{config}: unknown key 'learning_rate'; RLConfig has: env" in one_line_exit_1(
        ['rl', 'train', 'TrayReach', '--config', str(config), *out], capsys)
    assert "unknown key 'env.colour'" in one_line_exit_1(
        ['rl', 'train', 'TrayReach', '--set', 'env.colour=red', *out], capsys)
    wrong_size = one_line_exit_1(['rl', 'train', 'TrayReach', '--set', 'env.mode=latent', '--set',
                                  f'env.vae_checkpoint={BETAVAE_48PX}', '--set', 'env.image_size=64', *out], capsys)
    assert 'takes 3-channel 48 px images, but the env renders 3-channel 64 px images' in wrong_size
    assert not (tmp_path / 'run').exists() or not any((tmp_path / 'run').glob('*.yaml'))


def test_the_shipped_configs_load():
    for path in sorted(Path('config/rl').glob('*.yaml')):
        env_name = 'TrayPush' if path.name.startswith('push') else 'TrayReach'
        config = load_rl_config(env_name, path)
        assert config.env.task == ('push' if env_name == 'TrayPush' else 'reach'), path


class StopAfterChecks:
    """StopSignals as training uses it, 'receiving' SIGTERM once its state has been checked `checks` times."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    @property
    def received(self):
        self.checks -= 1
        return signal.SIGTERM if self.checks < 0 else None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def test_a_signal_stops_training_with_a_final_save_and_the_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(training, 'StopSignals', lambda: StopAfterChecks(checks=30))
    config = dataclasses.replace(STATE_REACH, total_steps=80, learning_starts=50, eval_every=0)
    stopped = train(config, tmp_path)
    assert stopped == training.TrainResult(env_steps=31, exit_code=128 + signal.SIGTERM)
    assert json.loads((tmp_path / 'resume' / 'train_state.json').read_text())['env_steps'] == 31
    assert load_policy(tmp_path / 'policy.safetensors').env_steps == 31
    monkeypatch.setattr(training, 'StopSignals', lambda: StopAfterChecks(checks=10**9))
    assert train(config, tmp_path) == training.TrainResult(env_steps=80, exit_code=0)
    assert train(config, tmp_path) == training.TrainResult(env_steps=80, exit_code=0)  # already there


def test_the_time_budget_stops_training_cleanly(tmp_path):
    config = dataclasses.replace(STATE_REACH, max_minutes=1e-4)
    result = train(config, tmp_path)
    assert result.exit_code == 0 and result.env_steps < TRAIN_STEPS
    assert (tmp_path / 'resume' / 'train_state.json').is_file() and (tmp_path / 'config.yaml').is_file()


def test_a_run_directory_of_something_else_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='is not empty and holds no config.yaml'):
        train(STATE_REACH, tmp_path)


def test_a_short_state_reach_run_beats_the_random_policy_by_far(tmp_path):
    # Half the steps, then a resume for the rest, with an evaluation at the end for the learning curve.
    first_half = dataclasses.replace(STATE_REACH, total_steps=TRAIN_STEPS // 2)
    assert train(first_half, tmp_path).env_steps == TRAIN_STEPS // 2
    full = dataclasses.replace(STATE_REACH, eval_every=TRAIN_STEPS, eval_episodes=5)
    assert train(full, tmp_path) == training.TrainResult(env_steps=TRAIN_STEPS, exit_code=0)
    curve = json.loads((tmp_path / 'curve.json').read_text())
    assert [point['env_steps'] for point in curve] == [TRAIN_STEPS]

    policy = load_policy(tmp_path / 'policy.safetensors')
    goals = 20
    trained = evaluate_policy(policy.act, STATE_REACH.env, goals, EVAL_SEED).summary()
    probe = make_env(STATE_REACH.env)
    random = evaluate_policy(random_policy(probe.action_space, 0), STATE_REACH.env, goals, EVAL_SEED).summary()
    probe.close()
    assert trained['final_distance_mean'] < 0.3 * random['final_distance_mean'], (trained, random)
    assert trained['success_rate'] >= 0.7 > random['success_rate'], (trained, random)
