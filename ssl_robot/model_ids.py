"""Model ids, as model_holder.LoadedCheckpoint.model_id writes them: '<method>:<file name>:step<step>:<sha256 prefix>'.

Every output of a model carries its model id (the frame_id of /embeddings, /latent/scene, /goal/latent, the
Grasp2Vec embeddings), so that a consumer compares only values from the same weights. Pure: the reward node, which
holds no model, checks its inputs with it.
"""

from __future__ import annotations


def _method_and_hash(model_id: str) -> tuple[str, str]:
    # The file name may itself hold ':'.
    return model_id.split(':', 1)[0], model_id.rsplit(':', 1)[-1]


def same_weights(model_id: str, other: str) -> bool:
    """Whether two model ids name the same method and the same weights (content hash), whatever the checkpoint file
    is called where each was loaded."""
    return _method_and_hash(model_id) == _method_and_hash(other)
