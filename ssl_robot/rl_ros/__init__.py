"""Goal-conditioned RL over the live ROS graph (imports rclpy, so it stays out of the pure ssl_robot.rl)."""

from ssl_robot.rl_ros.goal_env import RosGoalEnv

__all__ = ['RosGoalEnv']
