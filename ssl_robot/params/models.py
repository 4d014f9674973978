"""Parameters shared by the nodes that run a model. config/models.yaml sets the model ones once for every node;
each node declares only those of the model it runs."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_robot.params.checks import require_at_least, require_positive


@dataclass(frozen=True, kw_only=True)
class ModelNodeParams:
    """What every node that runs a model has."""

    torch_threads: int = 1
    """threads the models run on; 1 keeps a message fast on cores the other nodes share, where more make it slower;
    0 = one per core"""
    reload_check_period_s: float = 2.0
    """how often the checkpoint file is checked for a new version"""

    def __post_init__(self) -> None:
        if isinstance(self.torch_threads, bool) or self.torch_threads < 0:
            raise ValueError(f'parameter torch_threads must be an int >= 0 (0 = one per core), got '
                             f'{self.torch_threads!r}')
        require_positive(self, 'reload_check_period_s')


@dataclass(frozen=True, kw_only=True)
class EmbeddingModelParams(ModelNodeParams):
    """The TCN-family model (the embedding node's: live cameras and the imitation demo)."""

    embedding_method: str = 'tcn'
    """tcn, svtcn or mftcn; a checkpoint of another method is refused"""
    embedding_checkpoint: str = ''
    """checkpoint file; empty = the shipped ssl_robot/checkpoints/<embedding_method>.safetensors"""
    clip_frame_period_s: float = 0.1
    """mftcn: stamp time between the frames of a clip, as in the training bags; sets that come sooner are not
    embedded; 0 = every set"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least(self, 'clip_frame_period_s', 0.0)


@dataclass(frozen=True, kw_only=True)
class VaeModelParams(ModelNodeParams):
    """The VAE (the goal node's: goals and the latents of the scene frames)."""

    vae_method: str = 'ccvae'
    """ccvae (goals imagined in the current scene) or betavae (from the prior)"""
    vae_checkpoint: str = ''
    """checkpoint file; empty = the shipped ssl_robot/checkpoints/<vae_method>.safetensors"""


@dataclass(frozen=True, kw_only=True)
class Grasp2VecModelParams(ModelNodeParams):
    """The Grasp2Vec model (the grasp2vec node's: grasp embeddings and the goal object's)."""

    grasp2vec_checkpoint: str = ''
    """checkpoint file; empty = the shipped ssl_robot/checkpoints/grasp2vec.safetensors"""
