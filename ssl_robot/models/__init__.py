"""Pure PyTorch models and losses: TCN (multi- and single-view), mfTCN, Grasp2Vec, RIG's beta-VAE and CC-VAE.

Each model is built from its config dataclass and is an nn.Module whose forward(batch) returns (loss, metrics);
inference methods (embed, encode, reward, ...) run without autograd in eval() mode. Images are float tensors
in [0, 1], (B, C, H, W). No ROS here: nodes and training code build on this package, never the reverse.
"""

from .checkpoint import (CheckpointError, CheckpointHeader, load_checkpoint, load_weights, read_checkpoint_header,
                         save_checkpoint)
from .config import config_to_dict
from .encoders import default_device
from .grasp2vec import Grasp2Vec, Grasp2VecConfig
from .mftcn import MultiFrameTCN, MultiFrameTCNConfig
from .registry import METHODS, Method, build_model, config_from_dict, method_of, method_spec
from .tcn import TCN, SingleViewTCN, SingleViewTCNConfig, TCNConfig
from .vae import CCVAE, BetaVAE, BetaVAEConfig, CCVAEConfig, ImaginedGoals

__all__ = [
    'BetaVAE', 'BetaVAEConfig', 'CCVAE', 'CCVAEConfig', 'CheckpointError', 'CheckpointHeader', 'Grasp2Vec',
    'Grasp2VecConfig', 'ImaginedGoals', 'METHODS', 'Method', 'MultiFrameTCN', 'MultiFrameTCNConfig', 'SingleViewTCN',
    'SingleViewTCNConfig', 'TCN', 'TCNConfig', 'build_model', 'config_from_dict', 'config_to_dict', 'default_device',
    'load_checkpoint', 'load_weights', 'method_of', 'method_spec', 'read_checkpoint_header', 'save_checkpoint',
]
