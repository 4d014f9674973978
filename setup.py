from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'ssl_robot'


def share(folder, pattern='*'):
    """Install a source folder's files under share/ssl_robot/<folder>."""
    return (f'share/{PACKAGE}/{folder}', [f for f in glob(f'{folder}/{pattern}') if '.' in f.rsplit('/', 1)[-1]])


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['checkpoints/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        share('launch'),
        share('config'),
        share('sim'),
        share('sim/objects'),
        share('sim/rigs'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='ssl_robot maintainers',
    maintainer_email='maintainers@ssl-robot.dev',
    description='Self-supervised visual representations for robot control, as a ROS 2 stack.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'ssl-robot = ssl_robot.cli:main',
            'sim_node = ssl_robot.nodes.sim_node:main',
            'recorder_node = ssl_robot.nodes.recorder_node:main',
            'embedding_node = ssl_robot.nodes.embedding_node:main',
            'reward_node = ssl_robot.nodes.reward_node:main',
            'grasp2vec_node = ssl_robot.nodes.grasp2vec_node:main',
            'goal_node = ssl_robot.nodes.goal_node:main',
            'goal_reacher_node = ssl_robot.nodes.goal_reacher_node:main',
        ],
    },
)
