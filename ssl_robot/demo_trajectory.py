"""A demonstration for the TCN imitation reward, read from a bag, and the episode clock that lines live observations
up with it. Pure: no rclpy, so the reward node's alignment logic runs and is tested without ROS.

embed_demo() reads one episode of a bag (`ssl-robot collect --mode motion`, or a recording of the sim graph) and
embeds its synchronized camera sets the way the embedding node embeds live ones: the same cameras in the same order,
frames at the bag's resolution resized by inference.preprocess, the same MultiViewEmbedder, and the fused last row.
So a live /embeddings fused row and a demo row are comparable exactly when both come from the same weights, which
EmbeddedDemo.matches() checks from the model ids.

Time: the reward node counts a live observation's time from the start of its episode (the /sim/episode event's
stamp). A demo frame's time is counted from the start of the demo's episode as well, so time-index alignment pairs
frames taken equally long after a reset; rewards.DemoTrajectory counts from its first frame, which comes a little
after the reset (images are recorded every few ticks, and an mfTCN embeds only once its first clip is full), and
EmbeddedDemo.demo_time() takes that gap off.

EpisodeClock turns the stamps of one live stream into episode time: an episode starts at a /sim/episode event, or at
the first stamp seen while there has been none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ssl_robot.data.datasets import ReadOptions, episode_frames, index_recordings
from ssl_robot.inference import LoadedModel, MultiViewEmbedder
from ssl_robot.rewards import DemoTrajectory
from ssl_robot.train.config import DataConfig

NS_PER_S = 1_000_000_000
DEFAULT_CLOCK_JUMP_NS = NS_PER_S
"""As ssl_robot.sync: time going back further than this is a new timeline (a simulator restart, a looping bag)."""


@dataclass(frozen=True)
class EmbeddedDemo:
    """One demonstration episode embedded by one model."""

    trajectory: DemoTrajectory
    """The fused embeddings of the episode's camera sets and their stamps."""
    model_id: str
    """inference.LoadedCheckpoint.model_id of the model that embedded it."""
    first_frame_s: float
    """Seconds from the start of the demo's episode to its first embedded frame (0 for a bag without episode
    events, whose demo starts at its first frame)."""

    def demo_time(self, episode_time_s: float) -> float:
        """The trajectory time (seconds after its first frame) of an observation made episode_time_s after its episode
        started; 0 for one made before the demo's first frame, whose nearest frame is the first."""
        return max(0.0, episode_time_s - self.first_frame_s)

    def matches(self, model_id: str) -> bool:
        """Whether embeddings from the model named model_id can be compared with this demo: the same method and the
        same weights (content hash), whatever the checkpoint file is called where they were computed."""
        return _method_and_hash(model_id) == _method_and_hash(self.model_id)


def _method_and_hash(model_id: str) -> tuple[str, str]:
    # '<method>:<file name>:step<step>:<sha256 prefix>'; the file name may itself hold ':'.
    return model_id.split(':', 1)[0], model_id.rsplit(':', 1)[-1]


def embed_demo(bag: str | os.PathLike, episode: int, model: LoadedModel, camera_topics: Sequence[str], *,
               clip_frame_period_s: float = 0.0, options: ReadOptions = ReadOptions()) -> EmbeddedDemo:
    """Embed episode `episode` (0 = the bag's first) of bag with model, a TCN-family LoadedModel, from the cameras
    camera_topics in the order the embedding node's camera_topics lists them, and an mfTCN's clips spaced by
    clip_frame_period_s as the embedding node spaces them (inference.MultiViewEmbedder).

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


class StampRejected(ValueError):
    """A stamp an EpisodeClock does not place in the current episode; kind names why, for reports."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class EpisodeTime(NamedTuple):
    seconds: float
    """Time since the episode started."""
    first: bool
    """The first observation placed in this episode: where per-episode state (an ImitationReward's match, a CC-VAE
    context) starts over."""


class EpisodeClock:
    """Episode time for one stream of observation stamps (int ns, one clock).

    An episode starts at the stamp given to start_episode (a /sim/episode event) or, while none has been given, at the
    first stamp observed. Within an episode stamps must increase: one at or before the previous is rejected with kind
    'stamp_backwards', and one before the episode's start with kind 'before_episode' (an observation of the previous
    episode that arrived after the event). Time going back by more than clock_jump_ns, from the previous stamp or the
    episode's start, is a new timeline instead (a restarted simulator, a looping bag), whose episode starts there.
    """

    def __init__(self, clock_jump_ns: int = DEFAULT_CLOCK_JUMP_NS) -> None:
        if clock_jump_ns <= 0:
            raise ValueError(f'clock_jump_ns must be > 0, got {clock_jump_ns}')
        self.clock_jump_ns = clock_jump_ns
        self.start_ns: int | None = None
        self._previous_ns: int | None = None

    def start_episode(self, stamp_ns: int) -> bool:
        """A new episode starts at stamp_ns; False if it is the episode already running (a repeated event)."""
        if stamp_ns == self.start_ns:
            return False
        self.start_ns = stamp_ns
        self._previous_ns = None
        return True

    def observe(self, stamp_ns: int) -> EpisodeTime:
        """Place an observation in the current episode; StampRejected if it does not belong there."""
        previous = self._previous_ns
        reference = previous if previous is not None else self.start_ns
        if reference is not None and reference - stamp_ns > self.clock_jump_ns:
            self.start_ns, previous = stamp_ns, None
        elif previous is not None and stamp_ns <= previous:
            raise StampRejected('stamp_backwards', f'stamp {stamp_ns} ns is not after the previous {previous} ns')
        if self.start_ns is None:
            self.start_ns = stamp_ns
        if stamp_ns < self.start_ns:
            raise StampRejected('before_episode', f'stamp {stamp_ns} ns is before the episode start {self.start_ns} '
                                                  f'ns: left over from the previous episode')
        self._previous_ns = stamp_ns
        return EpisodeTime((stamp_ns - self.start_ns) / NS_PER_S, previous is None)
