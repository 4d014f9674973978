"""The one way every ssl_robot node process starts, spins and shuts down (ros2/examples style)."""

from __future__ import annotations

import signal
import sys
from typing import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.task import Future

# What a node constructor raises for bad configuration: a parameter of the wrong type or value, a missing or
# refused file. Caught only around construction; an error while spinning is a bug and keeps its traceback.
CONFIGURATION_ERRORS = (ValueError, OSError, ParameterException)


class _StopOnce:
    """SIGINT and SIGTERM handler: the first signal stops the node (KeyboardInterrupt out of spin), later ones
    are ignored. A terminal Ctrl-C under `ros2 launch` delivers SIGINT twice (the terminal's, then launch's):
    the second must not interrupt cleanup with a traceback and exit code -2."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, _number: int, _frame) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt


def spin_node(make_node: Callable[[], Node], executable: str, args: list[str] | None = None,
              until: Callable[[Node], Future] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C, SIGTERM, an external shutdown or the node's `until` future is
    done, and always clean up. A configuration error at start-up, or an `until` future that ends in an error
    (the node could not go on: a full disk), ends with one line naming it and exit status 1; a stop by signal,
    however many arrive, with status 0."""
    stop = _StopOnce()
    node = None
    try:
        # Installed before rclpy.init: rclpy's own handlers wake the executor, then chain to these.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, stop)
        rclpy.init(args=args)
        try:
            node = make_node()
        except CONFIGURATION_ERRORS as error:
            print(f'{executable}: {error}', file=sys.stderr, flush=True)
            return 1
        if until is None:
            rclpy.spin(node)
        else:
            finished = until(node)
            rclpy.spin_until_future_complete(node, finished)
            if finished.done() and finished.exception() is not None:
                print(f'{executable}: {finished.exception()}', file=sys.stderr, flush=True)
                return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # A take that races the context shutdown rclpy's own signal handler starts fails inside rclpy ("Unable to
        # convert call argument '0' to Python object", seen in the goal node at the end of a launch): after a stop
        # signal that is part of stopping. Anything else is a bug and keeps its traceback.
        if not (stop.stopping or not rclpy.ok()):
            raise
    finally:
        stop.stopping = True  # from here on, a signal must not interrupt cleanup
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
