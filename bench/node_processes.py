"""The node processes of a launch runner, read from /proc (psutil is not installed): which of the runner's children
is which node, and how much memory each holds. Linux only; no ROS."""

from __future__ import annotations

from pathlib import Path

PROC = Path('/proc')


def parent_pid(stat_text: str) -> int:
    """The ppid field of a /proc/<pid>/stat line. The command name before it is in parentheses and may itself hold
    spaces and parentheses, so the fields are counted from the last ')'."""
    return int(stat_text.rpartition(')')[2].split()[1])


def node_name(arguments: list[str]) -> str | None:
    """The node name a command line gives with `-r __node:=NAME` (as the launch runner starts every node), or None."""
    for flag, value in zip(arguments, arguments[1:]):
        if flag in ('-r', '--remap') and value.startswith('__node:='):
            return value.removeprefix('__node:=')
    return None


def vmrss_bytes(status_text: str) -> int | None:
    """Resident set size from the text of /proc/<pid>/status (its `VmRSS: N kB` line); None without one (a zombie)."""
    for line in status_text.splitlines():
        if line.startswith('VmRSS:'):
            value, unit = line.split()[1:3]
            if unit != 'kB':
                raise ValueError(f'unexpected VmRSS unit in {line!r}')
            return int(value) * 1024
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors='replace')
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process ended while we looked


def node_pids(runner_pid: int, proc: Path = PROC) -> dict[str, int]:
    """Node name -> pid of each living child of runner_pid that was started as a named node."""
    nodes = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(entry / 'stat')
        if stat is None or parent_pid(stat) != runner_pid:
            continue
        cmdline = _read(entry / 'cmdline')
        name = node_name(cmdline.rstrip('\0').split('\0')) if cmdline else None
        if name is not None:
            nodes[name] = int(entry.name)
    return nodes


def rss_bytes(pid: int, proc: Path = PROC) -> int | None:
    status = _read(proc / str(pid) / 'status')
    return vmrss_bytes(status) if status is not None else None


def node_memory(runner_pid: int, proc: Path = PROC) -> dict[str, tuple[int, int]]:
    """Node name -> (pid, RSS bytes) of each node process of the runner now."""
    sample = {}
    for name, pid in node_pids(runner_pid, proc).items():
        rss = rss_bytes(pid, proc)
        if rss is not None:
            sample[name] = (pid, rss)
    return sample
