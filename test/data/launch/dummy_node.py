"""A stand-in node executable for the launch runner tests: prints its arguments, reports readiness
through a file, and stops on SIGINT the way an rclpy node does (exit code 0)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    own_arguments = sys.argv[1:sys.argv.index('--ros-args')] if '--ros-args' in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser()
    parser.add_argument('--ready-file', type=Path, help='written (its pid) once the SIGINT handler is installed')
    parser.add_argument('--wait-for', type=Path, help='do nothing else until this file exists')
    parser.add_argument('--exit-code', type=int, help='exit with this code instead of waiting for SIGINT')
    parser.add_argument('--ignore-sigint', action='store_true', help='only SIGTERM or SIGKILL stop it')
    options = parser.parse_args(own_arguments)
    interrupted = []

    def on_sigint(_number, _frame) -> None:
        print('ignoring SIGINT' if options.ignore_sigint else 'got SIGINT')
        interrupted.append(not options.ignore_sigint)

    signal.signal(signal.SIGINT, on_sigint)
    print('argv:', ' '.join(sys.argv[1:]))
    print('a line on stderr', file=sys.stderr)
    while options.wait_for is not None and not options.wait_for.exists():
        time.sleep(0.02)
    if options.exit_code is not None:
        return options.exit_code
    if options.ready_file is not None:
        options.ready_file.write_text(str(os.getpid()))
    while not any(interrupted):
        time.sleep(0.02)
    return 0
