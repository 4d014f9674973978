"""ssl_robot.rl.policy: policies saved as safetensors and a typed config, loaded without unpickling anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from ssl_robot.cli import main
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.rl.config import RLConfig
from ssl_robot.rl.observers import make_observer
from ssl_robot.rl.policy import load_policy, save_policy
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.rl.training import make_learner, make_vec_env

CONFIG = RLConfig(env=EnvConfig(task='reach', mode='state'), n_envs=1, vec_env='dummy', learning_starts=50,
                  net_arch=(32, 32))


@pytest.fixture(scope='module')
def learner(tmp_path_factory):
    env = make_vec_env(CONFIG)
    model = make_learner(CONFIG, env, make_observer(CONFIG.env), tmp_path_factory.mktemp('run'), seed=3)
    model.learn(60)  # a few updates, so that the weights are not the initial ones
    yield model
    env.close()


@pytest.fixture
def saved(learner, tmp_path):
    return save_policy(tmp_path / 'policy.safetensors', learner, CONFIG, env_steps=60)


def observations(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{key: rng.uniform(-0.15, 0.15, 2).astype(np.float32)
             for key in ('observation', 'achieved_goal', 'desired_goal')} for _ in range(count)]


def test_a_saved_policy_acts_as_the_trained_one(learner, saved):
    policy = load_policy(saved)
    assert policy.config == CONFIG and policy.env_steps == 60
    for obs in observations(10):
        action = policy.act(obs)
        assert action.shape == (2,)
        np.testing.assert_allclose(action, learner.predict(obs, deterministic=True)[0], atol=1e-6)
    with safetensors.safe_open(saved, framework='pt') as file:
        assert file.metadata()['format'] == 'ssl_robot.policy/1'


def test_stochastic_actions_vary_and_stay_in_bounds(saved):
    policy = load_policy(saved)
    obs = observations(1)[0]
    actions = np.array([policy.act(obs, deterministic=False) for _ in range(20)])
    assert np.abs(actions).max() <= 1 and actions.std(axis=0).min() > 0


def test_a_policy_observing_the_state_in_latent_mode_saves_and_loads_with_its_own_observation_space(tmp_path):
    config = RLConfig(env=EnvConfig(task='reach', mode='latent', policy_observation='state'), n_envs=1,
                      vec_env='dummy', learning_starts=50, net_arch=(32, 32))
    env = make_vec_env(config)
    try:
        model = make_learner(config, env, make_observer(config.env), tmp_path / 'run', seed=3)
        model.learn(60)
        policy = load_policy(save_policy(tmp_path / 'policy.safetensors', model, config, env_steps=60))
        latent_dim = make_observer(config.env).dim
        assert policy.network.observation_space['observation'].shape == (2,)
        assert policy.network.observation_space['desired_goal'].shape == (latent_dim,)
        rng = np.random.default_rng(0)
        obs = {'observation': rng.uniform(-0.15, 0.15, 2).astype(np.float32),
               'achieved_goal': rng.standard_normal(latent_dim).astype(np.float32),
               'desired_goal': rng.standard_normal(latent_dim).astype(np.float32)}
        np.testing.assert_allclose(policy.act(obs), model.predict(obs, deterministic=True)[0], atol=1e-6)
    finally:
        env.close()


def test_pickled_policies_are_refused(learner, tmp_path):
    sb3_zip, torch_pt = tmp_path / 'model.zip', tmp_path / 'actor.pt'
    learner.save(sb3_zip)
    torch.save(learner.actor.state_dict(), torch_pt)
    for path in (sb3_zip, torch_pt):
        with pytest.raises(CheckpointError, match=f'{path} is not a safetensors policy but a pickle .zip.; pickled '
                                                  f'files such as torch .pt are refused'):
            load_policy(path)


def test_random_and_truncated_bytes_are_refused(saved, tmp_path):
    random_bytes, truncated = tmp_path / 'random.safetensors', tmp_path / 'truncated.safetensors'
    random_bytes.write_bytes(np.random.default_rng(0).bytes(5000))
    truncated.write_bytes(saved.read_bytes()[:len(saved.read_bytes()) // 2])
    for path in (random_bytes, truncated):
        with pytest.raises(CheckpointError, match=f'{path} is not a safetensors policy'):
            load_policy(path)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_policy(tmp_path / 'missing.safetensors')


def test_a_model_checkpoint_is_not_a_policy():
    with pytest.raises(CheckpointError, match="not an ssl_robot policy: its format is 'ssl_robot.checkpoint/1'"):
        load_policy('ssl_robot/checkpoints/betavae.safetensors')


def rewrite_config(source, target, **changes):
    tensors = safetensors.torch.load_file(source)
    with safetensors.safe_open(source, framework='pt') as file:
        metadata = file.metadata()
    config = json.loads(metadata['config'])
    config.update(changes)
    safetensors.torch.save_file(tensors, target, metadata={**metadata, 'config': json.dumps(config)})


def test_weights_that_do_not_fit_the_config_are_named(saved, tmp_path):
    wider = tmp_path / 'wider.safetensors'
    rewrite_config(saved, wider, net_arch=[64, 32])
    with pytest.raises(CheckpointError, match=r'does not fit its own config \(sac, net_arch \[64, 32\], env '
                                              r'reach/state\): latent_pi.0.weight has shape \(32, 6\) in the file, '
                                              r'\(64, 6\) in the config; .*latent_pi.2.weight has shape \(32, 32\)'):
        load_policy(wider)
    deeper = tmp_path / 'deeper.safetensors'
    rewrite_config(saved, deeper, net_arch=[32, 32, 32])
    with pytest.raises(CheckpointError, match=r"missing tensors \['latent_pi.4.bias', 'latent_pi.4.weight'\]"):
        load_policy(deeper)
    unknown = tmp_path / 'unknown_key.safetensors'
    rewrite_config(saved, unknown, colour='red')
    with pytest.raises(CheckpointError, match="malformed policy header: unknown key 'colour'"):
        load_policy(unknown)


def test_rl_eval_of_a_pickled_policy_is_one_line_and_exit_1(learner, tmp_path, capsys):
    run = tmp_path / 'run'
    run.mkdir()
    torch.save(learner.actor.state_dict(), run / 'policy.safetensors')
    assert main(['rl', 'eval', str(run), '--episodes', '1']) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'pickled files' in error and error.startswith('ssl-robot rl: error: ')
