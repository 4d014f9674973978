"""sim_node's parameters (config/sim.yaml). Not read-only: a change is checked here and, for the world parameters,
by building the new world before it is accepted."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_at_least
from ssl_robot.sim.runner import check_stepping

RUNNER_PARAMETERS = ('scene_file', 'camera_rig', 'object_set', 'num_objects', 'image_width', 'image_height', 'seed',
                     'mode', 'attempts_per_episode')
"""Parameters the sim runner is built from: a change to any of them builds a new world (checked before it is
accepted); the rest apply on the fly."""


@dataclass(frozen=True, kw_only=True)
class SimParams:
    scene_file: str = ''
    """scene yaml; empty = the installed sim/scene.yaml"""
    camera_rig: str = 'default'
    """camera rig name in sim/rigs/ (K scene cameras and their poses)"""
    object_set: str = 'random_urdfs'
    """object set name in sim/objects/"""
    num_objects: int = 5
    """objects spawned in the tray at each reset"""
    image_width: int = 128
    """scene and object camera width (px)"""
    image_height: int = 128
    """scene and object camera height (px)"""
    seed: int = 0
    """seed of the first episode; later episodes derive theirs from it"""
    mode: str = 'idle'
    """idle (commands only), grasp (Grasp2Vec collection) or motion (TCN behaviours)"""
    attempts_per_episode: int = 5
    """grasp mode: grasp attempts between tray resets"""
    real_time_factor: float = 1.0
    """sim seconds per wall second; 0 runs as fast as possible"""
    publish_segmentation: bool = True
    """publish per-camera object masks (ground truth)"""
    render_every: int = 1
    """render and publish the cameras on every this many ticks (1 = every tick); state, clock and events go out every
    tick. RL over the graph needs one frame per control period (3)"""
    stepping: str = 'free'
    """free: tick on a timer at real_time_factor; on_request: run ticks_per_step ticks per /sim/step request, as fast
    as it can, rendering the last"""
    ticks_per_step: int = 3
    """ticks of one /sim/step request: one control period (3 = 10 Hz)"""

    def __post_init__(self) -> None:
        require_at_least(self, 'real_time_factor', 0.0)
        if isinstance(self.render_every, bool) or not isinstance(self.render_every, int) or self.render_every < 1:
            raise ValueError(f'parameter render_every must be an integer >= 1, got {self.render_every!r}')
        check_stepping(self.stepping, self.ticks_per_step)
