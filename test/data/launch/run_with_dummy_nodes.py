"""`ssl-robot launch` with every node executable replaced by dummy_node.main, for signal tests that
must send SIGINT or SIGTERM to a runner process of its own. Usage: like `ssl-robot launch`."""

import argparse
import sys
from importlib.metadata import EntryPoint

from ssl_robot.ros import launch_runner


def dummy_entry_points() -> dict[str, EntryPoint]:
    return {name: EntryPoint(name, 'dummy_node:main', 'console_scripts')
            for name in ('sim_node', 'recorder_node', 'talker')}


if __name__ == '__main__':
    launch_runner.node_entry_points = dummy_entry_points
    parser = argparse.ArgumentParser()
    launch_runner.add_launch_arguments(parser)
    sys.exit(launch_runner.run_launch(parser.parse_args()))
