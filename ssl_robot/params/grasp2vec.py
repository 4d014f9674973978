"""grasp2vec_node's parameters (config/grasp2vec.yaml; its model's in config/models.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot import topics
from ssl_robot.params.checks import require_positive
from ssl_robot.params.models import Grasp2VecModelParams

DEFAULT_SCENE_CAMERA = topics.camera_image('front_left')


@dataclass(frozen=True, kw_only=True)
class Grasp2VecParams(Grasp2VecModelParams):
    scene_camera: str = topics.in_namespace(DEFAULT_SCENE_CAMERA)
    """image topic of the scene camera s_pre is taken from"""
    object_camera: str = topics.in_namespace(topics.camera_image(topics.OBJECT_CAMERA))
    """image topic of the camera grasped objects are shown to (o)"""
    frame_buffer_s: float = 30.0
    """how far back (in stamp time) frames are kept for the grasp events that will refer to them"""
    frame_buffer_max_mb: float = 256.0
    """most memory (MiB) the frames of each camera may take; past it the oldest go first, so large images are kept
    less than frame_buffer_s"""
    heatmap_opacity: float = 0.5
    """opacity of the coloured heatmap over s_pre: 0 scene only, 1 heatmap only"""
    goal_from_first_grasp: bool = True
    """make the object of the first successful grasp the goal object on /goal/object_image, as a
    /goal/object_from_grasp request would"""
    goal_object_file: str = ''
    """image file of the goal object, published on /goal/object_image at start; empty = a grasped object"""
    grasp_policy: str = ''
    """instance-grasping policy of /grasp/request (ssl-robot rl grasp-train); empty = the shipped
    ssl_robot/checkpoints/grasp_policy.safetensors; it must have been trained with this node's Grasp2Vec checkpoint
    and for the view of scene_camera"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, 'frame_buffer_s', 'frame_buffer_max_mb')
        if not 0.0 <= self.heatmap_opacity <= 1.0:
            raise ValueError(f'parameter heatmap_opacity must be in [0, 1], got {self.heatmap_opacity}')
