"""A node process for test_node_main: ssl_robot's spin_node with a node whose cleanup waits for a file, so that
a test can deliver a second signal while cleanup runs, as a terminal Ctrl-C under `ros2 launch` does (the
terminal's SIGINT, then launch's own). Usage: slow_cleanup_node.py DIRECTORY [--ros-args ...]"""

import sys
import time
from pathlib import Path

from rclpy.node import Node

from ssl_robot.ros.node_main import spin_node


class SlowCleanupNode(Node):
    def __init__(self, directory: Path) -> None:
        super().__init__('slow_cleanup')
        self.directory = directory
        (directory / 'ready').touch()  # spin_node's signal handling is in place once the node exists

    def destroy_node(self) -> None:
        (self.directory / 'cleaning').touch()
        while not (self.directory / 'go').exists():
            time.sleep(0.01)
        super().destroy_node()


if __name__ == '__main__':
    directory = Path(sys.argv[1])
    sys.exit(spin_node(lambda: SlowCleanupNode(directory), 'slow_cleanup_node', args=sys.argv[2:]))
