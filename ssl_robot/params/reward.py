"""reward_node's parameters (config/reward.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_choice, require_positive
from ssl_robot.rewards.functions import ALIGNMENTS

IMITATION, LATENT_GOAL, GRASP2VEC = 'imitation', 'latent_goal', 'grasp2vec'
KINDS = (IMITATION, LATENT_GOAL, GRASP2VEC)
"""The rewards the node can publish, each on /reward/<kind>."""


@dataclass(frozen=True, kw_only=True)
class RewardParams:
    kinds: tuple[str, ...] = KINDS
    """rewards to publish, any of imitation, latent_goal, grasp2vec; each on /reward/<kind>"""
    imitation_scale: float = 1.0
    """the imitation reward is multiplied by this (> 0)"""
    latent_goal_scale: float = 1.0
    """the latent_goal reward is multiplied by this (> 0)"""
    grasp2vec_scale: float = 1.0
    """the grasp2vec reward is multiplied by this (> 0)"""
    imitation_alignment: str = 'time_index'
    """imitation: how a demo frame is chosen, time_index or nearest_neighbour"""
    imitation_window: int = 0
    """imitation, nearest_neighbour: frames the match may move ahead per embedding; 0 = any frame of the demo"""
    grasp2vec_normalize: bool = True
    """grasp2vec: score the cosine of the embeddings, not their dot product"""

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f'parameter kinds must list some of {list(KINDS)}, each once, got {list(self.kinds)}')
        require_positive(self, *(f'{kind}_scale' for kind in KINDS))
        require_choice(self, 'imitation_alignment', ALIGNMENTS)
        if self.imitation_window < 0 or (self.imitation_window and self.imitation_alignment != 'nearest_neighbour'):
            raise ValueError(f'parameter imitation_window must be 0, or > 0 with imitation_alignment '
                             f'nearest_neighbour, got {self.imitation_window} with {self.imitation_alignment}')

    def scale(self, kind: str) -> float:
        return getattr(self, f'{kind}_scale')
