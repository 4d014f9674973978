"""DataConfig: what the data pipeline needs to turn recordings into batches, read by training (TrainConfig.data), by
evaluation and by live inference that embeds recorded demonstrations, none of which the data layer may import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ssl_robot.typed_config import convert_fields, require_at_least


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """What the bag reader (ssl_robot.data.datasets.make_dataset) needs to turn recordings into training batches."""

    cameras: tuple[str, ...] | Literal['auto'] = 'auto'
    """Image topics to read, in view order; 'auto': every sensor_msgs/Image topic of the bags, sorted by name."""
    views: int = 2
    """Multi-view methods (tcn, mftcn): synchronized camera views per time step, the first `views` cameras."""
    image_size: int | None = None
    """Side in pixels of the square images the frames are resized to. null: the model's image_size."""
    clip_frames: int | None = None
    """mftcn: frames per clip (n). null: the model's num_frames; unused by single-frame methods."""
    clip_stride: int | None = None
    """mftcn: frames between consecutive frames of a clip (s). null: the model's stride."""
    positive_window: int | None = None
    """svtcn: frames at most this far from an anchor are its positives. null: the model's positive_radius."""
    negative_window: int | None = None
    """TCN family: frames of the anchor's episode within this many frames of it are never negatives, so a batch
    needs times further apart than this. null: the model's negative_window (svtcn: negative_radius)."""
    episodes_per_batch: int = 4
    """Batch composition: a batch is batch_size time steps from this many episodes, batch_size / episodes_per_batch
    each, so in-batch negatives include hard ones from the anchor's own episode. Must divide batch_size."""
    val_fraction: float = 0.1
    """Fraction of the episodes held out as split 'val', chosen the same way on every run."""

    def __post_init__(self) -> None:
        convert_fields(self)
        if isinstance(self.cameras, tuple) and not self.cameras:
            raise ValueError("DataConfig.cameras must name at least one topic, or be 'auto'")
        if isinstance(self.cameras, tuple) and self.views > len(self.cameras):
            raise ValueError(f'DataConfig.views is {self.views} but cameras names only {len(self.cameras)}: '
                             f'{list(self.cameras)}')
        for name in ('views', 'image_size', 'clip_frames', 'clip_stride', 'positive_window', 'episodes_per_batch'):
            require_at_least(self, name, 1)
        require_at_least(self, 'negative_window', 0)
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f'DataConfig.val_fraction must be in [0, 1), got {self.val_fraction}')
