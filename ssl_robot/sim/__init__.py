"""PyBullet tray-and-arm simulation (pure Python, no ROS): the cameras and gripper for tests and data.

config.py (SimConfig, load_sim_config), world.py (TrayWorld: bodies, spawning, ground truth, grasp assist),
arm.py (IK arm and gripper), cameras.py (TinyRenderer cameras), behaviours.py (scripted grasps and motions,
one step per tick) and runner.py (SimRunner, the tick loop behind the sim node and `ssl-robot collect`).
"""

import os as _os


def _import_pybullet_quietly() -> None:
    # pybullet prints a build-time banner from C on its first import; CLIs promise one clear line on
    # error, so the banner is swallowed here, before any sim module imports pybullet.
    saved = _os.dup(2)
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        import pybullet  # noqa: F401
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)


_import_pybullet_quietly()
