"""Network-namespace checks: ROS processes started by tests and benchmarks must stay on loopback."""

from __future__ import annotations

import socket


def network_interfaces() -> list[str]:
    # if_nameindex asks the kernel about this process's namespace; /sys/class/net would show the
    # interfaces of whichever namespace sysfs was mounted in.
    return sorted(name for _, name in socket.if_nameindex())


def in_loopback_only_namespace() -> bool:
    """True when the only network interface this process can see is loopback."""
    try:
        return network_interfaces() == ['lo']
    except OSError:
        return False
