"""Goal-conditioned RL over the tray sim. Importing the package registers the envs with Gymnasium:

    env = gymnasium.make('ssl_robot/TrayReach-v0', config=EnvConfig(task='reach', mode='latent'))
"""

import gymnasium

from ssl_robot.rl.config import ENV_TASKS
from ssl_robot.rl.tasks import EnvConfig

for _name, _task in ENV_TASKS.items():
    gymnasium.register(id=f'ssl_robot/{_name}-v0', entry_point='ssl_robot.rl.envs:make_env',
                       kwargs={'config': EnvConfig(task=_task)})
