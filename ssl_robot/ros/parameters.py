"""Declaring and reading node parameters the same way in every ssl_robot node."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor


class NodeParameters:
    """Mixin for rclpy Node subclasses: every parameter declared with a default and a description, and read
    with checks whose errors name the parameter and the bad value."""

    READ_ONLY_PARAMETERS = False
    """True for nodes that build their topics, models and buffers from the parameters once at start: a change
    accepted later would silently do nothing, so it is refused instead."""

    def _declare(self, name: str, default: Any, description: str) -> None:
        self.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                  read_only=self.READ_ONLY_PARAMETERS))

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _topic_param(self, name: str) -> Any:
        """A topic-name parameter (or a list of them) as the full names they mean in this node's namespace: a
        relative name is expanded, remapping still applies where it is subscribed. What logs and diagnostics show."""
        value = self._param(name)
        if isinstance(value, str):
            return self.resolve_topic_name(value, only_expand=True)
        return [self.resolve_topic_name(topic, only_expand=True) for topic in value]

    def _positive(self, name: str) -> float:
        value = self._param(name)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f'parameter {name} must be a finite number > 0, got {value}')
        return value

    def _choice(self, name: str, choices: Sequence[str]) -> str:
        value = self._param(name)
        if value not in choices:
            raise ValueError(f'parameter {name} must be one of {list(choices)}, got {value!r}')
        return value

    # The models of the live graph, each run by one node; config/models.yaml sets them all, in one place.

    def _declare_embedding_model(self) -> None:
        """Declare the TCN-family model (the embedding node's: live cameras and the imitation demo)."""
        self._declare('embedding_method', 'tcn', 'tcn, svtcn or mftcn; a checkpoint of another method is refused')
        self._declare('embedding_checkpoint', '',
                      'checkpoint file; empty = the shipped ssl_robot/checkpoints/<embedding_method>.safetensors')
        self._declare('clip_frame_period_s', 0.1, 'mftcn: stamp time between the frames of a clip, as in the training '
                                                  'bags; sets that come sooner are not embedded; 0 = every set')

    def _declare_vae_model(self) -> None:
        """Declare the VAE (the goal node's: goals and the latents of the scene frames)."""
        self._declare('vae_method', 'ccvae', 'ccvae (goals imagined in the current scene) or betavae (from the prior)')
        self._declare('vae_checkpoint', '',
                      'checkpoint file; empty = the shipped ssl_robot/checkpoints/<vae_method>.safetensors')

    def _declare_grasp2vec_model(self) -> None:
        """Declare the Grasp2Vec model (the grasp2vec node's: grasp embeddings and the goal object's)."""
        self._declare('grasp2vec_checkpoint', '',
                      'checkpoint file; empty = the shipped ssl_robot/checkpoints/grasp2vec.safetensors')

    def _declare_torch_threads(self) -> None:
        """Declare torch_threads and run this process's models on that many threads (see set_torch_threads)."""
        # Imported here: nodes without a model (sim, recorder) use this mixin too and need not load torch.
        from ssl_robot.inference.model_holder import set_torch_threads
        self._declare('torch_threads', 1, 'threads the models run on; 1 keeps a message fast on cores the other '
                                          'nodes share, where more make it slower; 0 = one per core')
        set_torch_threads(self._param('torch_threads'))
