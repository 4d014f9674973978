"""ssl_robot: self-supervised visual representations for robot control, as a ROS 2 stack."""

__version__ = '0.1.0'
