"""The folders are the layers: imports point one way (nodes -> core; train/eval -> data -> models), the pure core
imports no rclpy, so everything important runs and is tested without a ROS graph, and no module grows past 400 lines.
Imports are read from the source (ast), so a lazy import inside a function counts too. Every Python file of the
repository stays within 120 columns."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'ssl_robot'
# Folders (and top-level modules) whose code must run without ROS.
PURE = ('models', 'data', 'train', 'inference', 'rewards', 'health', 'sim', 'rl', 'params', 'events', 'model_ids',
        'sync', 'topics', 'atomic', 'resources', 'images', 'typed_config')
# For each layer, the layers it must never import.
FORBIDDEN = {
    'models': ('data', 'train', 'inference', 'rewards', 'rl', 'apps', 'ros', 'nodes', 'rl_ros'),
    'data': ('train', 'inference', 'rl', 'apps', 'ros', 'nodes', 'rl_ros'),
    'train': ('inference', 'apps', 'ros', 'nodes', 'rl_ros'),
    'inference': ('train', 'apps', 'ros', 'nodes', 'rl_ros'),
    'rewards': ('models', 'train', 'inference', 'apps', 'ros', 'nodes', 'rl_ros'),
    'health': ('models', 'data', 'train', 'inference', 'apps', 'ros', 'nodes', 'rl_ros'),
    'sim': ('models', 'train', 'inference', 'rewards', 'rl', 'apps', 'ros', 'nodes', 'rl_ros'),
    'rl': ('apps', 'ros', 'nodes', 'rl_ros'),
    'params': ('models', 'train', 'inference', 'apps', 'ros', 'nodes', 'rl_ros'),
    'ros': ('apps', 'nodes', 'rl_ros'),
    'rl_ros': ('apps', 'nodes'),
    # The one image pipeline, below everything that decodes or feeds images: live nodes, bags, training, inference.
    'images': ('models', 'data', 'train', 'inference', 'rewards', 'health', 'sim', 'rl', 'apps', 'ros', 'nodes',
               'rl_ros'),
    # Typed configs for every layer's config classes.
    'typed_config': ('models', 'data', 'train', 'inference', 'rewards', 'health', 'sim', 'rl', 'apps', 'ros', 'nodes',
                     'rl_ros'),
}


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports_of(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f'{node.module}.{alias.name}' for alias in node.names)
    return modules


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob('*.py'))


def test_every_layer_is_known():
    assert {layer_of(path) for path in sources()} <= {*PURE, *FORBIDDEN, 'apps', 'nodes', 'cli', '__init__'}


@pytest.mark.parametrize('path', [p for p in sources() if layer_of(p) in PURE],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_pure_core_imports_no_rclpy(path):
    ros_imports = sorted(m for m in imports_of(path) if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py'))
    assert not ros_imports, f'{path.relative_to(PACKAGE)} imports {ros_imports}'


@pytest.mark.parametrize('path', [p for p in sources() if layer_of(p) in FORBIDDEN],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    layer = layer_of(path)
    upward = sorted(m for m in imports_of(path) if m.startswith('ssl_robot.')
                    and m.split('.')[1] in FORBIDDEN[layer])
    assert not upward, f'{path.relative_to(PACKAGE)} ({layer}) imports {upward}'


MAX_LINES = 400


@pytest.mark.parametrize('path', sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path):
    """A module over this mixes concerns (issue 10): split it by concern rather than raise the limit."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f'{path.relative_to(PACKAGE)} has {lines} lines (limit {MAX_LINES})'


MAX_COLUMNS = 120
REPOSITORY = PACKAGE.parent


def python_files() -> list[Path]:
    return sorted(path for folder in ('ssl_robot', 'test', 'bench') for path in
                  (REPOSITORY / folder).rglob('*.py')) + [REPOSITORY / 'setup.py']


def test_no_python_line_is_over_120_columns():
    """Module renames lengthen lines silently; one check keeps every file readable side by side."""
    long_lines = [f'{path.relative_to(REPOSITORY)}:{number} ({len(line)})' for path in python_files()
                  for number, line in enumerate(path.read_text().splitlines(), 1) if len(line) > MAX_COLUMNS]
    assert not long_lines, f'lines over {MAX_COLUMNS} columns: {long_lines}'
