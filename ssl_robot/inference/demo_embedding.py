"""Embedding a demonstration read from a bag with a TCN-family model, as the embedding node embeds live frames.

embed_demo() reads one episode of a bag (`ssl-robot collect --mode motion`, or a recording of the sim graph) and
embeds its synchronized camera sets the way the embedding node embeds live ones: the same cameras in the same order,
frames at the bag's resolution resized by images.model_pixels, the same MultiViewEmbedder, and the fused last row.
The embedding node, which holds the model, does this at start and publishes the demo for the reward node.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssl_robot.data.config import DataConfig
from ssl_robot.data.datasets import episode_frames
from ssl_robot.data.recordings import ReadOptions, index_recordings
from ssl_robot.rewards.demonstration import NS_PER_S, EmbeddedDemo
from ssl_robot.inference.embedder import MultiViewEmbedder
from ssl_robot.inference.model_holder import LoadedModel
from ssl_robot.rewards.functions import DemoTrajectory


def embed_demo(bag: str | os.PathLike, episode: int, model: LoadedModel, camera_topics: Sequence[str], *,
               clip_frame_period_s: float = 0.0, options: ReadOptions = ReadOptions()) -> EmbeddedDemo:
    """Embed episode `episode` (0 = the bag's first) of bag with model, a TCN-family LoadedModel, from the cameras
    camera_topics in the order the embedding node's camera_topics lists them, and an mfTCN's clips spaced by
    clip_frame_period_s as the embedding node spaces them (embedder.MultiViewEmbedder).

    Raises ValueError naming the problem: a bag that cannot be read or lacks a camera (BagError), an episode the bag
    does not have, or an episode too short for a single embedding (an mfTCN needs a full clip)."""
    if isinstance(episode, bool) or not isinstance(episode, (int, np.integer)) or episode < 0:
        raise ValueError(f'episode must be an int >= 0, got {episode!r}')
    if not camera_topics:
        raise ValueError('camera_topics is empty: a demo is embedded from at least one camera')
    cameras = tuple(camera_topics)
    recordings = index_recordings('tcn', [Path(bag)], DataConfig(cameras=cameras, views=len(cameras)),
                                  options=options)
    frames = recordings.frames_of(int(episode))
    embedder = MultiViewEmbedder(model, len(cameras), clip_frame_period_s)
    model_id = model.model_id
    rows, stamps = [], []
    for frame in episode_frames(recordings, int(episode), window_samples=options.window_samples):
        embeddings = embedder.embed(frame.stamp_ns, frame.images)
        if embeddings is not None:
            rows.append(embeddings.vectors[-1])
            stamps.append(frame.stamp_ns)
    if not rows:
        raise ValueError(f'episode {episode} of {bag} has {len(frames)} camera sets, too few for one '
                         f'{model_id} embedding')
    start_ns = frames.episode.start_ns if frames.episode.event is not None else stamps[0]
    return EmbeddedDemo(DemoTrajectory(np.stack(rows), np.array(stamps, dtype=np.int64)), model_id,
                        (stamps[0] - start_ns) / NS_PER_S)
