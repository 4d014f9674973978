import os
from glob import glob
from pathlib import Path

from setuptools import Command, find_packages, setup
from setuptools.command.bdist_wheel import bdist_wheel

PACKAGE = 'ssl_robot'
HERE = Path(__file__).resolve().parent
# Executable name -> entry point. colcon installs them into lib/ssl_robot (setup.cfg), where ros2 run and
# ros2 launch look; pip into bin/ only, so pip installs also get lib/ssl_robot wrappers (below).
EXECUTABLES = {
    'ssl-robot': 'ssl_robot.cli:main',
    'sim_node': 'ssl_robot.nodes.sim_node:main',
    'recorder_node': 'ssl_robot.nodes.recorder_node:main',
    'embedding_node': 'ssl_robot.nodes.embedding_node:main',
    'reward_node': 'ssl_robot.nodes.reward_node:main',
    'grasp2vec_node': 'ssl_robot.nodes.grasp2vec_node:main',
    'goal_node': 'ssl_robot.nodes.goal_node:main',
    'policy_node': 'ssl_robot.nodes.policy_node:main',
    'goal_sequence_node': 'ssl_robot.nodes.goal_sequence_node:main',
    'diagnostics_monitor_node': 'ssl_robot.nodes.diagnostics_monitor_node:main',
}
SHARED_FOLDERS = ['launch', 'config', 'sim']
AMENT_MARKER = 'share/ament_index/resource_index/packages'
# pip rewrites the interpreter line of console scripts only, and only in bin/; a wheel cannot carry
# symlinks. So lib/ssl_robot/<name> is a two-line wrapper that runs the console script pip generated in
# <prefix>/bin, whose interpreter line names the Python the wheel was installed for.
LIB_WRAPPER = '''#!/bin/sh
# ros2 run / ros2 launch start ssl_robot's executables from <prefix>/lib/ssl_robot; pip puts them in <prefix>/bin.
exec "$(dirname -- "$0")/../../bin/{name}" "$@"
'''


def share(folder, pattern='*'):
    """Install a source folder's files under share/ssl_robot/<folder>."""
    return (f'share/{PACKAGE}/{folder}', [f for f in glob(f'{folder}/{pattern}') if '.' in f.rsplit('/', 1)[-1]])


def write_lib_wrappers(directory):
    """lib/ssl_robot/<name> wrappers for every executable, into `directory`; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXECUTABLES:
        path = directory / name
        path.write_text(LIB_WRAPPER.format(name=name))
        path.chmod(0o755)
        paths.append(str(path))
    return paths


class BdistWheelWithRosLib(bdist_wheel):
    """A wheel that also installs lib/ssl_robot/<executable>, so ros2 run and ros2 launch find the nodes of a
    pip install (AMENT_PREFIX_PATH=<prefix>)."""

    def run(self):
        wrappers = write_lib_wrappers(Path(self.bdist_dir).parent / 'ros_lib')
        self.distribution.data_files.append((f'lib/{PACKAGE}', [os.path.relpath(p, HERE) for p in wrappers]))
        super().run()


class RosLayout(Command):
    """`python setup.py ros_layout --prefix PREFIX`, after `pip install -e .` into PREFIX (make setup does
    both): what an editable install lacks for ros2 run / ros2 launch (pip skips data_files there). The ament
    index marker, share/ssl_robot/ as symlinks into this checkout (edits take effect), and the lib/ssl_robot
    wrappers."""

    description = 'give an editable install the ament index entry, share/ssl_robot and lib/ssl_robot'
    user_options = [('prefix=', None, 'the environment pip installed into (e.g. .venv)')]

    def initialize_options(self):
        self.prefix = None

    def finalize_options(self):
        if not self.prefix:
            raise ValueError('ros_layout needs --prefix')
        self.prefix = Path(self.prefix).resolve()

    def run(self):
        marker = self.prefix / AMENT_MARKER / PACKAGE
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        share_dir = self.prefix / 'share' / PACKAGE
        share_dir.mkdir(parents=True, exist_ok=True)
        for name in ['package.xml', *SHARED_FOLDERS]:
            link = share_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(HERE / name)
        write_lib_wrappers(self.prefix / 'lib' / PACKAGE)


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['checkpoints/*']},
    data_files=[
        (AMENT_MARKER, [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        share('launch'),
        share('config'),
        share('config/foxglove'),
        share('sim'),
        share('sim/objects'),
        share('sim/rigs'),
    ],
    cmdclass={'bdist_wheel': BdistWheelWithRosLib, 'ros_layout': RosLayout},
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='ssl_robot maintainers',
    maintainer_email='maintainers@ssl-robot.dev',
    description='Self-supervised visual representations for robot control, as a ROS 2 stack.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [f'{name} = {target}' for name, target in EXECUTABLES.items()],
    },
)
