"""What the Grasp2Vec node computes, without ROS: grasp embeddings and the localisation heatmap drawn over the scene.

Frames are (H, W, 3) uint8 RGB arrays of any size, resized to the model's image_size as training resized them
(model_holder.model_input).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ssl_robot.inference.model_holder import LoadedModel, model_input
from ssl_robot.models.grasp2vec import Grasp2Vec

HEATMAP_COLORMAP = cv2.COLORMAP_JET
"""Blue (object unlikely there) to red (likely there), the colouring RViz and Foxglove users read heatmaps in."""



def colour_heatmap(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: heat ((h, w) finite floats) bilinearly resized, scaled from its minimum (blue)
    to its maximum (red). A flat map, which locates nothing, is all blue."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0 or not np.isfinite(heat).all():
        raise ValueError(f'heat must be a non-empty (h, w) array of finite values, got shape {heat.shape}')
    if height < 1 or width < 1:
        raise ValueError(f'heatmap size must be positive, got {width}x{height}')
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(heat.min()), float(heat.max())
    scaled = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    levels = np.round(scaled * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, HEATMAP_COLORMAP), cv2.COLOR_BGR2RGB)


def heatmap_overlay(scene: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """The scene ((H, W, 3) uint8 RGB) with the coloured heatmap blended over it at this opacity (0: the scene
    alone, 1: the heatmap alone), same size and dtype."""
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f'scene must be an (H, W, 3) uint8 RGB image, got {scene.dtype} {scene.shape}')
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity must be in [0, 1], got {opacity}')
    colours = colour_heatmap(heat, scene.shape[0], scene.shape[1])
    return cv2.addWeighted(colours, opacity, np.ascontiguousarray(scene), 1.0 - opacity, 0.0)


@dataclass(frozen=True)
class GraspEmbeddings:
    """What Grasp2Vec makes of one grasp attempt."""

    scene: np.ndarray
    """(1, D) float32 phi_s(s_pre): the scene before the grasp."""
    grasped_object: np.ndarray | None
    """(1, D) float32 phi_o(o): the object shown to the object camera; None when the grasp failed."""
    heatmap: np.ndarray | None
    """(H, W, 3) uint8 RGB: phi_o(o) . phi_s,spatial(s_pre) coloured over s_pre at its own size; None on failure."""
    model_id: str


def embed_grasp(loaded: LoadedModel, scene: np.ndarray, grasped_object: np.ndarray | None,
                heatmap_opacity: float) -> GraspEmbeddings:
    """Grasp2Vec embeddings of s_pre (scene) and, for a successful grasp, of o (grasped_object) and where o is in
    s_pre. One model serves the whole grasp, even if a reload swaps it meanwhile."""
    current = loaded.current
    model = current.model
    if not isinstance(model, Grasp2Vec):
        raise ValueError(f'{current.model_id} is not a Grasp2Vec model')
    scene_input = model_input(loaded, scene)
    scene_embedding = model.scene_embedding(scene_input).cpu().numpy()
    if grasped_object is None:
        return GraspEmbeddings(scene_embedding, None, None, current.model_id)
    object_input = model_input(loaded, grasped_object)
    object_embedding = model.object_embedding(object_input).cpu().numpy()
    heat = model.heatmap(scene_input, object_input, upsample=True)[0].cpu().numpy()
    return GraspEmbeddings(scene_embedding, object_embedding, heatmap_overlay(scene, heat, heatmap_opacity),
                           current.model_id)


def embed_object(loaded: LoadedModel, image: np.ndarray) -> tuple[np.ndarray, str]:
    """phi_o of an object image ((H, W, 3) uint8 RGB) as (1, D) float32, and the id of the model that made it: the
    goal object's embedding, which the reward node scores grasped objects against."""
    current = loaded.current
    if not isinstance(current.model, Grasp2Vec):
        raise ValueError(f'{current.model_id} is not a Grasp2Vec model')
    return current.model.object_embedding(model_input(loaded, image)).cpu().numpy(), current.model_id


