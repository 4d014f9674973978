"""goal_node's parameters (config/goal.yaml; its model's in config/models.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot import topics
from ssl_robot.params.models import VaeModelParams

DEFAULT_CAMERA = topics.camera_image('front_left')


@dataclass(frozen=True, kw_only=True)
class GoalParams(VaeModelParams):
    camera: str = topics.in_namespace(DEFAULT_CAMERA)
    """image topic of the scene camera: its newest frame is the context s0 of an imagined goal, or the goal itself on
    /goal/from_scene"""
    imagine_method: str = ''
    """'' = the node's model imagines the goals; ccvae or betavae: a second model imagines them (the CC-VAE in the
    current scene) and the goal image is encoded by the node's model, so that /goal/latent stays in the space of
    /latent/scene (the space a policy was trained in)"""
    imagine_checkpoint: str = ''
    """checkpoint of imagine_method; empty = the shipped ssl_robot/checkpoints/<imagine_method>.safetensors"""
    seed: int = -1
    """seed of the goal latents: the same seed draws the same sequence; < 0 = random"""
