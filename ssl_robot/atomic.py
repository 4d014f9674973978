"""Atomic file writes: a reader, or a process started after a crash, sees the old file or the complete new
one, never a torn one. Checkpoints, run files, reports and bag metadata all go through here."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or file creation in directory path survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write data (text is UTF-8 encoded) to path through a synced temporary file and a rename."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode('utf8')
    temporary = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
    # os.open rather than mkstemp: mkstemp's files are private (0600) whatever the umask says.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, 'wb') as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
