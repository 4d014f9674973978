"""embedding_node's parameters (config/embedding.yaml; its model's in config/models.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot import topics
from ssl_robot.params.checks import require_at_least, require_positive
from ssl_robot.params.models import EmbeddingModelParams

DEFAULT_CAMERA_TOPICS = tuple(topics.camera_image(camera) for camera in ('front_left', 'front_right', 'high_side'))
_IN_NAMESPACE = tuple(topics.in_namespace(topic) for topic in DEFAULT_CAMERA_TOPICS)


@dataclass(frozen=True, kw_only=True)
class EmbeddingParams(EmbeddingModelParams):
    camera_topics: tuple[str, ...] = _IN_NAMESPACE
    """image topics of the K synchronized cameras; their order is the row order of /embeddings"""
    sync_queue_size: int = 10
    """frames queued per camera while waiting for the others"""
    sync_max_interval_ms: float = 10.0
    """largest stamp spread within one synchronized set (ms)"""
    silent_camera_timeout_s: float = 2.0
    """a camera without a frame for this long is reported silent"""
    demo_bag: str = ''
    """bag of the imitation demonstration, embedded and latched on /embeddings/demo; empty = no demo"""
    demo_episode: int = 0
    """the demonstration is this episode of demo_bag (0 = the first)"""
    demo_camera_topics: tuple[str, ...] = _IN_NAMESPACE
    """the demo's cameras in demo_bag, in camera_topics order; a relative name is looked up in the bag as this node
    resolves it (in its namespace)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.camera_topics:
            raise ValueError('parameter camera_topics must name at least one camera, got []')
        require_positive(self, 'sync_queue_size', 'silent_camera_timeout_s')
        require_at_least(self, 'sync_max_interval_ms', 0.0)
        require_at_least(self, 'demo_episode', 0)
