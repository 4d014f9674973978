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
               'launch/main_job.launch.xml', 'config/sim.yaml', 'config/recorder.yaml', 'config/fastdds_shm.xml',
               'config/embedding.yaml', 'config/models.yaml', 'config/reward.yaml', 'config/grasp2vec.yaml',
               'config/goal.yaml', 'config/policy.yaml', 'config/goal_sequence.yaml', 'config/foxglove/main_job.json',
               'config/diagnostics_monitor.yaml',
               'sim/scene.yaml', 'sim/rigs/default.yaml', 'sim/rigs/main_job.yaml']
NODE_EXECUTABLES = ['sim_node', 'recorder_node', 'embedding_node', 'reward_node', 'grasp2vec_node', 'goal_node',
                    'policy_node', 'goal_sequence_node', 'diagnostics_monitor_node', 'ssl-robot']


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


@pytest.fixture(scope='module')
def wheel(source_copy, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation',
                    '-w', str(directory), str(source_copy)], check=True, capture_output=True)
    return next(directory.glob('ssl_robot-*.whl'))


def share_directory_found_by_the_ament_index(prefix: Path) -> Path:
    """get_package_share_directory('ssl_robot') with AMENT_PREFIX_PATH=prefix, as ros2 launch resolves it."""
    code = 'from ament_index_python.packages import get_package_share_directory as g; print(g("ssl_robot"))'
    environment = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    return Path(subprocess.run([sys.executable, '-c', code], env=environment, check=True, capture_output=True,
                               text=True).stdout.strip())


def assert_ros_can_start_the_executables(prefix: Path) -> None:
    """ros2 run / ros2 launch execute <prefix>/lib/ssl_robot/<name>: each must exist, be executable and run
    the console script of this prefix's Python (ssl-robot --help runs it without starting a node)."""
    for name in NODE_EXECUTABLES:
        executable = prefix / 'lib' / 'ssl_robot' / name
        assert executable.is_file() and os.access(executable, os.X_OK), f'ros2 run cannot start {executable}'
        script = prefix / 'bin' / name
        assert script.read_text().splitlines()[0] == f'#!{prefix / "bin" / "python"}', script
    result = subprocess.run([str(prefix / 'lib' / 'ssl_robot' / 'ssl-robot'), '--help'], capture_output=True,
                            text=True, env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert result.returncode == 0 and result.stdout.startswith('usage: ssl-robot'), result


def test_pip_wheel_carries_share_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split('/data/')[0] for n in names if '.data/data/' in n)
    for name in SHARE_FILES:
        assert f'{data}/data/share/ssl_robot/{name}' in names, f'pip install would lack share/ssl_robot/{name}'
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    for name in NODE_EXECUTABLES:
        assert f'{name} = ' in entry_points


def test_a_wheel_install_can_be_run_by_ros2_launch_and_ros2_run(wheel, tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install', '--quiet',
                    '--no-deps', '--no-index', str(wheel)], check=True, capture_output=True)
    assert_ros_can_start_the_executables(venv)
    assert share_directory_found_by_the_ament_index(venv) == venv / 'share' / 'ssl_robot'
    assert (venv / 'share' / 'ssl_robot' / 'launch' / 'sim.launch.xml').is_file()


def test_an_editable_install_gets_the_ament_index_entry_share_links_and_lib_wrappers(source_copy, tmp_path):
    """What `make setup` does after `pip install -e .` (which skips data_files): setup.py ros_layout."""
    prefix = tmp_path / 'prefix'
    (prefix / 'bin').mkdir(parents=True)
    for name in NODE_EXECUTABLES:  # as pip install -e would have written them
        (prefix / 'bin' / name).write_text(f'#!{prefix / "bin" / "python"}\n')
    subprocess.run([sys.executable, 'setup.py', '--quiet', 'ros_layout', '--prefix', str(prefix)], cwd=source_copy,
                   check=True, capture_output=True)
    share = share_directory_found_by_the_ament_index(prefix)
    assert share == prefix / 'share' / 'ssl_robot'
    assert (share / 'launch').resolve() == (source_copy / 'launch').resolve()  # edits take effect
    for name in SHARE_FILES:
        assert (share / name).is_file(), name
    for name in NODE_EXECUTABLES:
        executable = prefix / 'lib' / 'ssl_robot' / name
        assert os.access(executable, os.X_OK) and (executable.parent / '../../bin' / name).resolve() == \
            (prefix / 'bin' / name).resolve()


def test_this_environment_is_laid_out_for_ros2_launch():
    """make setup's own environment (an editable install) resolves through the ament index and has lib/ssl_robot."""
    if not (Path(sys.prefix) / 'lib' / 'ssl_robot').is_dir():
        pytest.skip('not an environment made by make setup')
    assert share_directory_found_by_the_ament_index(Path(sys.prefix)) == Path(sys.prefix) / 'share' / 'ssl_robot'
    assert_ros_can_start_the_executables(Path(sys.prefix))
