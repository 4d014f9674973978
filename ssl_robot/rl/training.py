"""Goal-conditioned RL training: SAC or TD3 (stable-baselines3) with RIG's relabelling over TrayGoalEnvs.

    RUN/config.yaml            the resolved RLConfig of the latest start
    RUN/policy.safetensors     the latest policy (ssl_robot.rl.policy), what `ssl-robot rl eval RUN` evaluates
    RUN/curve.json             [{env_steps, **EvalResult.summary()}, ...]: held-out evaluations during training
    RUN/tb/                    TensorBoard event files
    RUN/resume/                learner_<step>.safetensors (policy, optimizers, entropy coefficient),
                               replay_<step>.npz (the replay buffer) and train_state.json naming the two

Rerunning on the same RUN continues from RUN/resume. train_state.json is written after the files it names and
older ones are deleted only then, so a kill at any moment leaves a complete set. Nothing is pickled: tensors are
safetensors, the buffer is np.savez of plain arrays, the rest JSON. SIGINT/SIGTERM and the max_minutes budget stop
training after the current step with a final save.
"""

from __future__ import annotations

import io
import json
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from tqdm import tqdm

from ssl_robot.atomic import write_atomic
from ssl_robot.rl.config import RLConfig, config_to_yaml
from ssl_robot.rl.envs import TrayGoalEnv, make_env
from ssl_robot.rl.her import RigHerReplayBuffer
from ssl_robot.rl.observers import Observer, make_observer
from ssl_robot.rl.policy import ALGORITHMS, policy_kwargs, save_policy
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.train.checkpoint import optimizer_state_from_tensors, optimizer_state_to_tensors
from ssl_robot.train.loop import derived_seed
from ssl_robot.train.run_dir import RunDir
from ssl_robot.train.stop_signals import StopSignals

POLICY_FILE, CURVE_FILE, CONFIG_FILE, STATE_FILE = 'policy.safetensors', 'curve.json', 'config.yaml', 'train_state.json'
TD3_ACTION_NOISE = 0.1
"""TD3's Gaussian exploration noise, in units of the largest action (SAC explores through its entropy)."""


@dataclass(frozen=True)
class TrainResult:
    env_steps: int
    exit_code: int
    """0 at total_steps or past the time budget; 128 + N when stopped by signal N."""


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def _env_process(config: EnvConfig, torch_threads: int, own_process: bool) -> TrayGoalEnv:
    torch.set_num_threads(torch_threads)  # per env process: a latent env runs its VAE here
    if own_process:
        # Ctrl-C reaches the whole process group: the learner stops, saves and closes the envs, which must
        # still be alive for that.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_env(config)


def make_vec_env(config: RLConfig) -> VecEnv:
    """config.n_envs envs; SB3 seeds env i with the learner's seed + i at the first reset."""
    subproc = config.vec_env == 'subproc'
    env_fns = [partial(_env_process, config.env, config.torch_threads, subproc)] * config.n_envs
    return SubprocVecEnv(env_fns) if subproc else DummyVecEnv(env_fns)


def make_learner(config: RLConfig, env: VecEnv, observer: Observer, run: Path, seed: int) -> OffPolicyAlgorithm:
    """The SB3 learner of config over env, with the RIG relabelling buffer scoring and imagining goals through
    observer (make_observer(config.env)), logging to RUN/tb."""
    extra = {}
    if config.algo == 'td3':
        extra['action_noise'] = NormalActionNoise(np.zeros(2), np.full(2, TD3_ACTION_NOISE))
    return ALGORITHMS[config.algo](
        'MultiInputPolicy', env, learning_rate=config.lr, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, batch_size=config.batch_size, tau=config.tau, gamma=config.gamma,
        train_freq=config.train_freq, gradient_steps=config.gradient_steps, policy_kwargs=policy_kwargs(config),
        replay_buffer_class=RigHerReplayBuffer,
        replay_buffer_kwargs={'observer': observer, 'relabel': config.relabel, 'seed': seed},
        tensorboard_log=str(run / 'tb'), seed=seed, device=get_device(config.device), verbose=0, **extra)


# ------------------------------------------------------------------------------------------------------ resume

def save_resume(run: Path, model: OffPolicyAlgorithm) -> None:
    """Everything a resume needs, in RUN/resume (see the module docstring)."""
    directory = run / 'resume'
    directory.mkdir(parents=True, exist_ok=True)
    step = model.num_timesteps
    tensors, optimizers = {}, {}
    for name, state in model.get_parameters().items():
        if isinstance(state.get('param_groups'), list):  # an optimizer's state_dict
            optimizer_tensors, optimizers[name] = optimizer_state_to_tensors(state)
            state = optimizer_tensors
        tensors.update({f'{name}/{key}': value.detach().cpu().contiguous() for key, value in state.items()})
    for name in model._get_torch_save_params()[1]:  # tensors outside modules, e.g. SAC's log_ent_coef
        tensors[f'variables/{name}'] = getattr(model, name).detach().cpu().contiguous()
    learner_file, replay_file = f'learner_{step:09d}.safetensors', f'replay_{step:09d}.npz'
    write_atomic(directory / learner_file, safetensors.torch.save(tensors))
    arrays = io.BytesIO()
    np.savez(arrays, **model.replay_buffer.state_arrays())
    write_atomic(directory / replay_file, arrays.getvalue())
    state = {'env_steps': step, 'updates': model._n_updates, 'episodes': model._episode_num,
             'learner': learner_file, 'replay': replay_file, 'optimizers': optimizers}
    write_atomic(directory / STATE_FILE, json.dumps(state))
    for old in [*directory.glob('learner_*'), *directory.glob('replay_*')]:
        if old.name not in (learner_file, replay_file):
            old.unlink()


def resume_step(run: Path) -> int:
    """The env steps of RUN's resume state; 0 for a new run."""
    state_file = run / 'resume' / STATE_FILE
    return json.loads(state_file.read_text())['env_steps'] if state_file.is_file() else 0


def load_resume(run: Path, model: OffPolicyAlgorithm) -> None:
    """Restore save_resume's state into a learner made from the same config."""
    directory = run / 'resume'
    state = json.loads((directory / STATE_FILE).read_text())
    learner_file = directory / state['learner']
    groups: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for key, tensor in safetensors.torch.load_file(learner_file, device='cpu').items():
        name, sub_key = key.split('/', 1)
        groups[name][sub_key] = tensor
    variables = groups.pop('variables', {})
    # An optimizer that has not stepped yet has no tensors, only its param_groups.
    parameters = {**groups, **{name: optimizer_state_from_tensors(groups.get(name, {}), rest)
                               for name, rest in state['optimizers'].items()}}
    try:
        model.set_parameters(parameters, exact_match=True, device=model.device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f'{learner_file} does not fit this config (net_arch, algo and env must stay as they '
                         f'were): {error}') from None
    with torch.no_grad():
        for name, tensor in variables.items():
            getattr(model, name).copy_(tensor)
    with np.load(directory / state['replay'], allow_pickle=False) as arrays:
        model.replay_buffer.load_state_arrays(dict(arrays), str(directory / state['replay']))
    model.num_timesteps, model._n_updates, model._episode_num = (state['env_steps'], state['updates'],
                                                                  state['episodes'])


# ----------------------------------------------------------------------------------------------------- training

class TrainingCallback(BaseCallback):
    """Progress bar, held-out evaluations, periodic saves, and stopping on a signal or past the time budget."""

    def __init__(self, config: RLConfig, run: Path, signals: StopSignals, progress: tqdm) -> None:
        super().__init__()
        self.config, self.run, self.signals, self.progress = config, run, signals, progress
        self.started = time.monotonic()
        self.stop_code = 0
        self.curve = json.loads((run / CURVE_FILE).read_text()) if (run / CURVE_FILE).is_file() else []

    def _on_step(self) -> bool:
        steps, config = self.num_timesteps, self.config
        self.progress.update(steps - self.progress.n)
        if self._crossed(config.eval_every):
            self.evaluate()
        if self._crossed(config.checkpoint_every):
            save_resume(self.run, self.model)
        over_budget = config.max_minutes is not None and time.monotonic() - self.started >= 60 * config.max_minutes
        self.stop_code = 128 + self.signals.received if self.signals.received else int(over_budget)
        return not self.stop_code

    def _crossed(self, every: int) -> bool:
        """Whether this vec env step passed a multiple of every env steps."""
        n_envs = self.training_env.num_envs
        return bool(every) and self.num_timesteps // every > (self.num_timesteps - n_envs) // every

    def evaluate(self) -> None:
        """Held-out goals -> RUN/curve.json, TensorBoard and the progress bar; the policy is saved with it."""
        from ssl_robot.rl.evaluation import EVAL_SEED, evaluate_policy  # written alongside; loaded when used
        result = evaluate_policy(lambda obs: self.model.predict(obs, deterministic=True)[0], self.config.env,
                                 self.config.eval_episodes, EVAL_SEED)
        summary = result.summary()
        self.curve = [point for point in self.curve if point['env_steps'] < self.num_timesteps]
        self.curve.append({'env_steps': self.num_timesteps, **summary})
        write_atomic(self.run / CURVE_FILE, json.dumps(self.curve, indent=1))
        for name, value in summary.items():
            self.logger.record(f'eval/{name}', value)
        self.progress.set_postfix(distance=f'{summary["final_distance_median"]:.3f}',
                                  success=f'{summary["success_rate"]:.2f}')
        save_policy(self.run / POLICY_FILE, self.model, self.config, self.num_timesteps)


def train(config: RLConfig, out: Path) -> TrainResult:
    """Train into run directory out, resuming what it holds; returns at total_steps, past the time budget or on
    SIGINT/SIGTERM, each time with a final save."""
    run = Path(out)
    run_dir = RunDir(run)
    with run_dir.lock(), StopSignals() as signals:
        if not (run / CONFIG_FILE).is_file() and any(entry.name != '.lock' for entry in run.iterdir()):
            raise ValueError(f'{run} is not empty and holds no {CONFIG_FILE}: not an rl run directory; '
                             f'choose a new --out')
        step = resume_step(run)
        if step >= config.total_steps:
            _say(f'{run} is already at {step} env steps: raise total_steps (now {config.total_steps}) to train on')
            return TrainResult(step, 0)
        torch.set_num_threads(config.torch_threads)
        # A resumed run draws new episodes and batches rather than replaying those of its start.
        seed = derived_seed(config.seed, step) if step else config.seed
        # Made first, so that a VAE checkpoint that does not fit is refused here rather than in an env process.
        observer = make_observer(config.env)
        env = make_vec_env(config)
        try:
            model = make_learner(config, env, observer, run, seed)
            if step:
                load_resume(run, model)
                _say(f'resuming {run} from {step} env steps')
            write_atomic(run / CONFIG_FILE, config_to_yaml(config))
            with tqdm(total=config.total_steps, initial=step, unit='step') as progress:
                callback = TrainingCallback(config, run, signals, progress)
                model.learn(config.total_steps - step, callback=callback, reset_num_timesteps=not step,
                            tb_log_name=config.algo)
                if callback.stop_code == 0 and config.eval_every and (
                        not callback.curve or callback.curve[-1]['env_steps'] < model.num_timesteps):
                    callback.evaluate()  # the curve ends where training did
            save_policy(run / POLICY_FILE, model, config, model.num_timesteps)
            save_resume(run, model)
        finally:
            env.close()
    if callback.stop_code:
        cause = f'{config.max_minutes} min budget spent' if callback.stop_code == 1 else \
            f'by {signal.Signals(callback.stop_code - 128).name}'
        _say(f'stopped at {model.num_timesteps} of {config.total_steps} env steps, {cause}: run the same command '
             f'to continue')
    return TrainResult(model.num_timesteps, 0 if callback.stop_code <= 1 else callback.stop_code)
