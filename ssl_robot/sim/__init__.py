"""PyBullet tray-and-arm simulation (pure Python, no ROS): the cameras and gripper for tests and data.

config.py (SimConfig, load_sim_config), world.py (TrayWorld: bodies, spawning, ground truth, grasp assist),
arm.py (IK arm and gripper), cameras.py (TinyRenderer cameras), behaviours.py (scripted grasps and motions,
one step per tick) and runner.py (SimRunner, the tick loop behind the sim node and `ssl-robot collect`).
"""
