"""PolicyRunner (ssl_robot.rl.policy_runner) without ROS: what policy_node commands, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.rl.config import RLConfig
from ssl_robot.rl.policy import GoalPolicy
from ssl_robot.rl.policy_runner import Command, PolicyFile, PolicyRunner, SafetyLimits, Skip
from ssl_robot.rl.tasks import EnvConfig

MODEL = 'betavae:rl_reach_vae.safetensors:step5000:abc'
MS = 1_000_000
LIMITS = SafetyLimits(workspace_min=(0.45, -0.15, 0.05), workspace_max=(0.75, 0.15, 0.3), max_speed_mps=0.2,
                      control_hz=10.0, max_observation_age_s=0.5, start_position=(0.6, 0.0, 0.115))


class RecordingPolicy:
    """Always the same action; remembers what it was asked."""

    def __init__(self, action=(1.0, 0.0)) -> None:
        self.action = np.array(action)
        self.observations: list[dict] = []

    def __call__(self, obs: dict) -> np.ndarray:
        self.observations.append(obs)
        return self.action


def runner(action=(1.0, 0.0), limits=LIMITS, steps_per_goal=50, enabled=True) -> tuple[PolicyRunner, RecordingPolicy]:
    policy = RecordingPolicy(action)
    return PolicyRunner(policy, limits, MODEL, latent_dim=2, action_step_m=0.02, steps_per_goal=steps_per_goal,
                        enabled=enabled), policy


def ready(action=(1.0, 0.0), **kwargs) -> tuple[PolicyRunner, RecordingPolicy]:
    run, policy = runner(action, **kwargs)
    assert run.set_goal(np.array([1.0, 0.0]), MODEL, 0) is None
    return run, policy


def test_a_fresh_observation_gets_one_command_with_its_stamp_and_the_policy_sees_rig_observations():
    run, policy = ready()
    assert run.observe(np.array([0.0, 0.0]), MODEL, 100 * MS) is None
    command = run.control(150 * MS)
    assert isinstance(command, Command) and command.stamp_ns == 100 * MS
    np.testing.assert_allclose(command.position, (0.62, 0.0, 0.115))
    seen = policy.observations[0]
    np.testing.assert_array_equal(seen['observation'], [0.0, 0.0])
    np.testing.assert_array_equal(seen['achieved_goal'], [0.0, 0.0])
    np.testing.assert_array_equal(seen['desired_goal'], [1.0, 0.0])
    assert run.status()['reward'] == pytest.approx(-1.0) and run.status()['steps'] == 1
    # The same observation is not answered twice.
    assert run.control(200 * MS) == Skip('waiting', 'the newest scene latent was answered', False)


def test_stale_observations_are_skipped_and_counted_as_problems():
    run, _ = ready()
    run.observe(np.zeros(2), MODEL, 0)
    skip = run.control(600 * MS)
    assert isinstance(skip, Skip) and skip.kind == 'stale_observation' and skip.problem
    # No newer latent for longer than the bound: still stale, still no command.
    skip = run.control(700 * MS)
    assert skip.kind == 'stale_observation' and skip.problem
    assert run.status()['steps'] == 0


@pytest.mark.parametrize('latent', [np.array([np.nan, 0.0]), np.array([np.inf, 0.0]), np.zeros(3)])
def test_a_nan_or_misshapen_goal_is_refused_and_drops_the_goal_in_force(latent):
    run, _ = ready()
    refused = run.set_goal(latent, MODEL, 5)
    assert refused.kind == 'bad_goal' and refused.problem
    run.observe(np.zeros(2), MODEL, 100 * MS)
    assert run.control(100 * MS).kind == 'no_goal'


def test_a_nan_observation_is_refused_and_replaces_the_previous_one():
    run, _ = ready()
    run.observe(np.zeros(2), MODEL, 100 * MS)
    refused = run.observe(np.array([0.0, np.nan]), MODEL, 200 * MS)
    assert refused.kind == 'bad_observation' and refused.problem
    assert run.control(200 * MS).kind == 'no_observation'


def test_latents_of_another_model_are_refused():
    run, _ = ready()
    other = 'ccvae:rl_reach_ccvae.safetensors:step3000:def'
    assert run.observe(np.zeros(2), other, 100 * MS).kind == 'wrong_model'
    assert run.control(100 * MS).kind == 'no_observation'
    assert run.set_goal(np.zeros(2), other, 7).kind == 'wrong_model'
    run.observe(np.zeros(2), MODEL, 200 * MS)
    assert run.control(200 * MS).kind == 'no_goal'


def test_the_target_stays_in_the_workspace_box():
    run, _ = ready(action=(1.0, -1.0))
    for step in range(40):
        run.observe(np.zeros(2), MODEL, step * 100 * MS)
        command = run.control(step * 100 * MS)
    np.testing.assert_allclose(command.position, (0.75, -0.15, 0.115))


def test_a_step_is_never_longer_than_the_speed_limit_allows():
    slow = SafetyLimits(**{**LIMITS.__dict__, 'max_speed_mps': 0.1})   # 1 cm per 10 Hz period
    run, _ = ready(action=(1.0, 1.0), limits=slow)
    run.observe(np.zeros(2), MODEL, 0)
    command = run.control(0)
    step = np.subtract(command.position, LIMITS.start_position)
    assert np.linalg.norm(step) == pytest.approx(0.01)
    np.testing.assert_allclose(step[:2] / np.linalg.norm(step), [2 ** -0.5] * 2)


def test_disabled_publishes_nothing_and_enabling_restarts_from_the_start_position():
    run, policy = ready(enabled=False)
    for step in range(5):
        run.observe(np.zeros(2), MODEL, step * 100 * MS)
        assert run.control(step * 100 * MS).kind == 'disabled'
    assert policy.observations == []
    run.set_enabled(True)
    run.observe(np.zeros(2), MODEL, 600 * MS)
    np.testing.assert_allclose(run.control(600 * MS).position, (0.62, 0.0, 0.115))
    run.set_enabled(False)
    run.observe(np.zeros(2), MODEL, 700 * MS)
    assert run.control(700 * MS).kind == 'disabled'


def test_a_goal_is_done_after_its_steps_and_a_new_goal_starts_over():
    run, _ = ready(steps_per_goal=3)
    for step in range(3):
        run.observe(np.zeros(2), MODEL, step * 100 * MS)
        assert isinstance(run.control(step * 100 * MS), Command)
    run.observe(np.zeros(2), MODEL, 300 * MS)
    assert run.control(300 * MS).kind == 'done' and run.status()['done']
    run.set_goal(np.array([0.0, 1.0]), MODEL, 300 * MS)
    assert run.status()['goal_id'] == 2 and run.status()['steps'] == 0 and not run.status()['done']
    run.observe(np.zeros(2), MODEL, 400 * MS)
    assert isinstance(run.control(400 * MS), Command)


def test_a_non_finite_action_moves_nothing():
    run, _ = ready(action=(np.nan, np.inf))
    run.observe(np.zeros(2), MODEL, 0)
    np.testing.assert_allclose(run.control(0).position, LIMITS.start_position)


def test_limits_are_checked():
    with pytest.raises(ValueError, match='below workspace_max'):
        SafetyLimits(**{**LIMITS.__dict__, 'workspace_min': (0.8, -0.15, 0.05)})
    with pytest.raises(ValueError, match='max_speed_mps'):
        SafetyLimits(**{**LIMITS.__dict__, 'max_speed_mps': 0.0})
    with pytest.raises(ValueError, match='start_position'):
        SafetyLimits(**{**LIMITS.__dict__, 'start_position': (0.0, 0.0, 0.115)})


def test_the_shipped_policy_loads_with_its_vae_model_id_and_a_broken_file_keeps_the_old_one(tmp_path):
    path = tmp_path / 'policy.safetensors'
    path.write_bytes(PolicyFile('').path.read_bytes())
    loaded = PolicyFile(path)
    assert loaded.model_id.startswith('betavae:rl_reach_vae.safetensors:step')
    assert not loaded.reload_if_changed()
    old = loaded.policy
    path.write_bytes(b'\x80\x04not a policy')   # a pickle, as an SB3 .zip or torch .pt would hold
    with pytest.raises(CheckpointError):
        loaded.reload_if_changed()
    assert loaded.policy is old


@pytest.mark.parametrize('env, refused', [(EnvConfig(task='reach', mode='state'), 'state-mode'),
                                          (EnvConfig(task='reach', mode='latent', policy_observation='state'),
                                           'observes state')])
def test_policies_that_do_not_act_on_latents_alone_are_refused(env, refused):
    with pytest.raises(ValueError, match=refused):
        PolicyFile.vae_model_id(GoalPolicy(RLConfig(env=env), env_steps=0, network=None))
