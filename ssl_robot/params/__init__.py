"""The parameters of each node, one frozen dataclass per node: a field per parameter with its default and, under it,
the docstring that becomes the parameter's description (ssl_robot.ros.parameters.declare_params). Pure: each
__post_init__ refuses a bad value naming the parameter and the value, tested without ROS; config/*.yaml give the
values."""
