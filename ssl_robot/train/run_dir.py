"""The run directory of one training run, and the code version recorded in it.

    RUN_DIR/config.yaml      the resolved config of the latest start (what `--config` would reproduce)
    RUN_DIR/version.json     one entry per start or resume: step, time, package version, git commit and dirty flag
    RUN_DIR/checkpoints/     step_XXXXXXXXX/ directories and the `latest` link (see ssl_robot.train.checkpoint)
    RUN_DIR/tensorboard/     TensorBoard event files

Every file is written atomically (temp file, fsync, os.replace): a killed run leaves the old file or the new one.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

import ssl_robot
from ssl_robot.atomic import write_atomic
from ssl_robot.train.config import TrainConfig, config_to_yaml
from ssl_robot.train.errors import TrainError
from ssl_robot.typed_config import to_plain


def _git(*args: str) -> str | None:
    source = Path(ssl_robot.__file__).resolve().parent
    if not (source.parent / '.git').exists():
        return None  # an installed copy: a repository around it would be someone else's
    try:
        done = subprocess.run(['git', '-C', str(source), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The package version and, when it runs from a git checkout, the commit, `git describe` and whether tracked
    files had uncommitted changes (git_dirty). Git fields are null outside a checkout."""
    try:
        package_version = metadata.version('ssl_robot')
    except metadata.PackageNotFoundError:
        package_version = ssl_robot.__version__
    commit = _git('rev-parse', 'HEAD')
    status = _git('status', '--porcelain', '--untracked-files=no') if commit else None
    return {
        'package_version': package_version,
        'git_commit': commit,
        'git_describe': _git('describe', '--always', '--dirty', '--tags') if commit else None,
        'git_dirty': bool(status) if status is not None else None,
    }


def version_label(version: dict[str, Any]) -> str:
    """code_version() in one string, e.g. '0.1.0 (git v0.1-3-gabc1234-dirty)'."""
    described = version['git_describe']
    return f"{version['package_version']} (git {described})" if described else version['package_version']


def _flatten(values: Any, prefix: str = '') -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f'{prefix}.{key}' if prefix else key))
    return flat


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / 'config.yaml'

    @property
    def version_file(self) -> Path:
        return self.path / 'version.json'

    @property
    def checkpoints(self) -> Path:
        return self.path / 'checkpoints'

    @property
    def tensorboard(self) -> Path:
        return self.path / 'tensorboard'

    def changes_from_saved(self, config: TrainConfig) -> list[str]:
        """The settings that differ from the saved config, as 'key: old -> new'; [] for a new run directory.

        Raises TrainError when the directory holds something else than a run, or a run of another method:
        its checkpoints could not be loaded into this model.
        """
        if not self.config_file.exists():
            if self.path.exists() and any(entry.name != '.lock' for entry in self.path.iterdir()):
                raise TrainError(f'{self.path} is not empty and holds no config.yaml: not a run directory; '
                                 f'choose a new --out')
            return []
        try:
            saved = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise TrainError(f'cannot read the saved config {self.config_file}: {err}') from err
        saved_method = saved.get('method') if isinstance(saved, dict) else None
        if saved_method != config.method:
            raise TrainError(f'{self.path} holds a {saved_method!r} run; it cannot resume as {config.method!r}: '
                             f'choose another --out')
        old, new = _flatten(saved), _flatten(to_plain(config))
        return [f'{key}: {old.get(key)!r} -> {new.get(key)!r}' for key in sorted(old.keys() | new.keys())
                if old.get(key) != new.get(key)]

    def record_start(self, config: TrainConfig, step: int, version: dict[str, Any]) -> None:
        """Save the resolved config, and append this start's step and code version to version.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_file, config_to_yaml(config).encode())
        starts = json.loads(self.version_file.read_text())['starts'] if self.version_file.exists() else []
        starts.append({'step': step, 'time': datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       **version})
        write_atomic(self.version_file, json.dumps({'starts': starts}, indent=2).encode())

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for one training job: a second job on the same --out is refused, not interleaved."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / '.lock', 'w') as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TrainError(f'another training process is using {self.path}') from None
            yield
