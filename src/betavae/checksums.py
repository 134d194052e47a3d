"""sha256 of a safetensors file's contents as read (metadata and tensors), stored in its own metadata, so that a file
changed by hand or by the disk (a flipped byte, a shifted mean) is told apart from the one betavae wrote."""

from __future__ import annotations

import hashlib
import json

import torch

KEY = "sha256"  # the metadata entry that holds the digest


def content_digest(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the metadata (all but the digest itself) and of the tensors' names, types, shapes and bytes."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in metadata.items() if k != KEY}, sort_keys=True).encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 too
    return digest.hexdigest()


def sealed(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """The metadata with the digest of itself and the tensors added."""
    return {**metadata, KEY: content_digest(metadata, tensors)}


def intact(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> bool:
    """Whether the stored digest matches what was read."""
    return metadata.get(KEY) == content_digest(metadata, tensors)
