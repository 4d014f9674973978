"""The nearest achievable state of an imagined goal: where the hand would have to be for the camera to show what the
goal latent stands for. An imagined goal z_g (drawn from the VAE prior) has no true state behind it; its stand-in is
the hand position whose latent is nearest z_g, found by posing the reach env's hand on a grid over the workspace,
encoding each task camera image with the VAE the goal came from, and taking the grid point of the nearest latent.
Pure (no rclpy); runs the sim in this process.
"""

from __future__ import annotations

import numpy as np

from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.tasks import WORKSPACE_HALF_EXTENT_M, EnvConfig, workspace_bounds

COARSE_STEP_M = 0.03
"""Spacing of the first search: 11 x 11 hand positions over the reach workspace."""
FINE_STEP_M = 0.01
"""Spacing of the second search, within one coarse step of the first's best: the answer is within half a centimetre
(per axis) of the best 1 cm grid point, for a latent that changes smoothly with the hand position."""


class LatentAtlas:
    """Hand positions over the reach workspace and their latents (task camera, the env config's VAE), searched coarse
    to fine. Holds a sim until close()."""

    def __init__(self, config: EnvConfig = EnvConfig(task='reach', mode='latent')) -> None:
        if config.task != 'reach' or config.mode != 'latent':
            raise ValueError(f'the atlas poses the hand of the reach task in latent mode, '
                             f'got {config.task}/{config.mode}')
        self.env = TrayGoalEnv(config)
        self.env.reset(seed=0)
        self.low, self.high = workspace_bounds()
        centre = (self.low + self.high) / 2
        self.positions, self.latents = self._pose(centre, WORKSPACE_HALF_EXTENT_M, COARSE_STEP_M)

    def _pose(self, centre: np.ndarray, half_extent: float, step: float) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.arange(-half_extent, half_extent + step / 2, step)
        positions = np.array([np.clip(centre + (dx, dy), self.low, self.high) for dx in offsets for dy in offsets])
        latents = []
        for hand_xy in positions:
            self.env.pose_scene(hand_xy)
            latents.append(self.env.observe())
        return positions, np.array(latents)

    def nearest_position(self, goal_latent: np.ndarray) -> np.ndarray:
        """(x, y) of the posed hand whose latent is nearest goal_latent."""
        goal = np.asarray(goal_latent, float)
        coarse = self.positions[int(np.argmin(np.linalg.norm(self.latents - goal, axis=1)))]
        positions, latents = self._pose(coarse, COARSE_STEP_M, FINE_STEP_M)
        return positions[int(np.argmin(np.linalg.norm(latents - goal, axis=1)))].copy()

    def close(self) -> None:
        self.env.close()
