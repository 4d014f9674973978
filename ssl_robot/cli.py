"""`ssl-robot`: the command line of the package.

Each verb lives in its own module and is imported only when used, so `ssl-robot --help` stays fast and
a verb's heavy imports (torch, pybullet, rclpy) do not slow the others. Errors a user can fix end the
command with one line naming the problem and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module, one-line help). Each module provides add_<verb>_arguments(parser) and run_<verb>(args), with
# a verb's dashes as underscores.
VERBS = {
    'launch': ('ssl_robot.ros.launch_runner', 'run a launch/*.launch.xml graph without a ROS install'),
    'record': ('ssl_robot.nodes.recorder_node', 'record topics to a rosbag2 bag (MCAP by default)'),
    'collect': ('ssl_robot.apps.collect', 'run the sim headless in a collection mode and record N episodes'),
    'train': ('ssl_robot.train.cli', 'train a self-supervised model on bags (resumes an existing run directory)'),
    'eval': ('ssl_robot.train.evaluate', 'evaluate a trained run on held-out bags against baselines, as a report'),
    'main-job': ('ssl_robot.apps.main_job', 'the main job: bring up the sim graph for a bounded time and report it'),
    'eval-reward': ('ssl_robot.rl.reward_faithfulness',
                    'how faithfully rewards rank random scenes by their true distance to held-out goals'),
    'rl': ('ssl_robot.rl.cli', 'train or evaluate goal-conditioned policies in the tray sim (SAC + RIG relabelling)'),
}

# Bad input (values, files, bags, checkpoints) surfaces as one of these; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (ValueError, OSError)


def python_name(verb: str) -> str:
    return verb.replace('-', '_')


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ssl-robot', description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest='verb', required=True, metavar='VERB')
    for verb, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        if verb in argv[:1]:
            # Only the chosen verb's module is imported to declare its arguments.
            getattr(importlib.import_module(module_name), f'add_{python_name(verb)}_arguments')(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(args.module_name)
    try:
        return int(getattr(module, f'run_{python_name(args.verb)}')(args) or 0)
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as error:
        print(f'ssl-robot {args.verb}: error: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    raise SystemExit(main())
