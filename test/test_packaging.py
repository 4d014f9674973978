"""The package installs both ways the README promises: colcon (ROS users) and pip (no ROS).

Both build from a copy of the tracked files, so a file that exists here but is not committed, or a
data folder setup.py forgets, fails these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SHARE_FILES = ['package.xml', 'launch/sim.launch.xml', 'launch/robot.launch.xml', 'launch/learning.launch.xml',
               'launch/demo.launch.xml', 'config/sim.yaml', 'config/recorder.yaml', 'config/fastdds_shm.xml',
               'config/embedding.yaml', 'config/embedding_model.yaml', 'config/reward.yaml', 'config/grasp2vec.yaml', 'config/goal.yaml',
               'config/goal_reacher.yaml', 'sim/scene.yaml', 'sim/rigs/default.yaml']
NODE_EXECUTABLES = ['sim_node', 'recorder_node', 'embedding_node', 'reward_node', 'grasp2vec_node', 'goal_node',
                    'goal_reacher_node', 'ssl-robot']


@pytest.fixture(scope='module')
def source_copy(tmp_path_factory) -> Path:
    """The tracked files of this checkout, as a fresh clone would have them."""
    target = tmp_path_factory.mktemp('src') / 'ssl_robot'
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split('\0')
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_colcon_build_installs_share_files_executables_and_ament_marker(source_copy, tmp_path):
    colcon = shutil.which('colcon', path=str(Path(sys.executable).parent))
    assert colcon, 'colcon is a test dependency (requirements.txt)'
    workspace = tmp_path / 'ws'
    (workspace / 'src').mkdir(parents=True)
    shutil.copytree(source_copy, workspace / 'src' / 'ssl_robot')
    subprocess.run([colcon, 'build', '--packages-select', 'ssl_robot'], cwd=workspace, check=True,
                   capture_output=True)
    prefix = workspace / 'install' / 'ssl_robot'
    share = prefix / 'share' / 'ssl_robot'
    for name in SHARE_FILES:
        assert (share / name).is_file(), f'colcon install lacks share/ssl_robot/{name}'
    assert list((share / 'sim' / 'objects').glob('*.yaml')), 'no object sets installed'
    for name in NODE_EXECUTABLES:
        assert (prefix / 'lib' / 'ssl_robot' / name).is_file(), f'ros2 run cannot find {name}'
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'ssl_robot').is_file()

    # Imported from the install (not this checkout), the package finds its files through the ament index.
    site = next(prefix.glob('lib/python3*/site-packages'))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site))
    found = subprocess.run([sys.executable, '-c', 'from ssl_robot.resources import share_dir; print(share_dir())'],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(found).resolve() == share.resolve()


def test_pip_wheel_carries_share_files(source_copy, tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation',
                    '-w', str(tmp_path), str(source_copy)], check=True, capture_output=True)
    wheel = next(tmp_path.glob('ssl_robot-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split('/data/')[0] for n in names if '.data/data/' in n)
    for name in SHARE_FILES:
        assert f'{data}/data/share/ssl_robot/{name}' in names, f'pip install would lack share/ssl_robot/{name}'
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    for name in NODE_EXECUTABLES:
        assert f'{name} = ' in entry_points
