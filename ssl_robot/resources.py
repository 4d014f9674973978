"""Locate the package's installed data: launch/, config/ and sim/.

Three layouts must work: a source checkout (also what `pip install -e .` leaves, since editable installs
skip setup.py data_files), a colcon/ament install (found through the ament index), and a plain pip
install (data_files land under <prefix>/share/ssl_robot).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = 'ssl_robot'
SHARE_ENV = 'SSL_ROBOT_SHARE'


def _source_tree() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / 'package.xml').is_file() and (root / 'launch').is_dir() else None


def _ament_share() -> Path | None:
    if not os.environ.get('AMENT_PREFIX_PATH'):
        return None
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError, KeyError):
        return None


def share_dir() -> Path:
    """The directory holding launch/, config/ and sim/ for the running copy of the package."""
    override = os.environ.get(SHARE_ENV)
    if override:
        return Path(override)
    # A checkout wins over an ament install so that edits to launch/config files take effect in
    # editable and colcon --symlink-install workflows without reinstalling.
    for candidate in (_source_tree(), _ament_share(), Path(sys.prefix) / 'share' / PACKAGE):
        if candidate is not None and (candidate / 'launch').is_dir():
            return candidate
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory (launch/, config/, sim/): not a source checkout, '
        f'not in the ament index, not under {Path(sys.prefix) / "share" / PACKAGE}; set {SHARE_ENV}')


def share_path(*parts: str) -> Path:
    """A file under the share directory, e.g. share_path('config', 'sim.yaml')."""
    return share_dir().joinpath(*parts)
