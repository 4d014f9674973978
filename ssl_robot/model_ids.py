"""Model ids: which weights computed a value, as '<method>:<file name>:step<step>:<sha256 prefix>'.

Every output of a model carries its model id (the frame_id of /embeddings, /latent/scene, /goal/latent, the
Grasp2Vec embeddings), so that a consumer compares only values from the same weights. Messages carry the text form;
ModelId is the one place that writes and reads it. Pure: the reward node, which holds no model, checks its inputs
with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HASH_CHARS = 12
"""Hex digits of the checkpoint file's sha256 kept in a model id: enough to tell trained weights apart."""

_METHOD = re.compile(r'[a-z0-9_]+')
_STEP = re.compile(r'step(0|[1-9][0-9]*)')
_HASH = re.compile(f'[0-9a-f]{{{HASH_CHARS}}}')


@dataclass(frozen=True)
class ModelId:
    """The model a value came from: its method, the checkpoint file it was loaded from, and the file's contents."""

    method: str
    """Registry name of the model, e.g. 'tcn'."""
    file_name: str
    """Name of the checkpoint file; it may hold ':'."""
    step: int
    """Training step at which the checkpoint was written."""
    sha256_prefix: str
    """The first HASH_CHARS lowercase hex digits of the checkpoint file's sha256."""

    def __post_init__(self) -> None:
        if not _METHOD.fullmatch(self.method):
            raise ValueError(f'model id method {self.method!r} is not a registry name (lowercase letters, digits, _)')
        if not self.file_name:
            raise ValueError('model id file name is empty')
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 0:
            raise ValueError(f'model id step must be an int >= 0, got {self.step!r}')
        if not _HASH.fullmatch(self.sha256_prefix):
            raise ValueError(f'model id hash {self.sha256_prefix!r} is not {HASH_CHARS} lowercase hex digits')

    @classmethod
    def of_checkpoint(cls, method: str, file_name: str, step: int, sha256: str) -> ModelId:
        """The id of a checkpoint file whose full sha256 hex digest is sha256."""
        return cls(method, file_name, step, sha256[:HASH_CHARS])

    def format(self) -> str:
        return f'{self.method}:{self.file_name}:step{self.step}:{self.sha256_prefix}'

    __str__ = format

    @classmethod
    def parse(cls, text: str) -> ModelId:
        """The model id written as text by format(); ValueError naming the text if it is not one."""
        method, _, rest = text.partition(':')
        middle, _, sha256_prefix = rest.rpartition(':')
        file_name, _, step = middle.rpartition(':')
        step_match = _STEP.fullmatch(step)
        if not step_match:
            raise ValueError(f'{text!r} is not a model id: expected <method>:<file name>:step<step>:<sha256 prefix>')
        try:
            return cls(method, file_name, int(step_match[1]), sha256_prefix)
        except ValueError as error:
            raise ValueError(f'{text!r} is not a model id: {error}') from None

    def same_weights(self, other: ModelId) -> bool:
        """Whether both name the same method and the same weights (file contents), whatever the checkpoint file is
        called where each was loaded."""
        return (self.method, self.sha256_prefix) == (other.method, other.sha256_prefix)
