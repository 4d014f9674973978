"""Rewards from learned embeddings, pure numpy: the reward functions (functions), the TCN imitation demonstration
and its episode clock (demonstration), goal relabelling for RL (relabel), and judging a reward stream by how it
orders states (evaluation)."""
