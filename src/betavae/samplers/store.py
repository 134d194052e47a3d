"""A fitted sampler on disk: RUN/samplers/NAME-COMPONENTS-COVARIANCE.safetensors (no pickle), its tensors with the
sampler's kind and settings, the sha256 of the weights it was fitted for, and a sha256 of all of that, so that a file
changed by hand or by the disk (flipped bytes, shifted means) is told apart from one fitted for other weights.
What is read is checked before it is used: a registered kind, mixtures of the run's latent size, finite numbers,
weights that sum to 1, covariances that are positive definite."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from .. import atomic, checksums
from ..errors import BetaVAEError, first_line
from . import registry
from .base import UNCONDITIONAL, Sampler
from .mixture import FIELDS, Mixture

FORMAT = 2  # 2: the file's own sha256 is stored with it; format 1 files (without it) are fitted again


class DamagedSampler(BetaVAEError):
    """A sampler file that is not what betavae wrote: refused, or fitted again by `for_run`."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path} is not a valid betavae sampler ({reason}); delete it, and betavae fits the "
                         "sampler again when asked for it")
        self.path, self.reason = path, reason


class StaleSampler(BetaVAEError):
    """A sampler file fitted for other weights than the run's (or by an older betavae): `for_run` fits it again."""


def save(sampler: Sampler, path: Path, weights_sha256: str) -> None:
    """Write a fitted sampler (atomically) for the weights of this sha256."""
    tensors = {f"{field}/{label}": getattr(mixture, field).contiguous()
               for label, mixture in sampler.mixtures.items() for field in FIELDS}
    metadata = {"format": str(FORMAT), "kind": sampler.name, "settings": json.dumps(sampler.settings),
                "weights_sha256": weights_sha256}
    atomic.write_bytes(path, save_safetensors_bytes(tensors, metadata=checksums.sealed(metadata, tensors)))


def read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and tensors, or DamagedSampler."""
    try:
        with safe_open(str(path), framework="pt") as stored:
            return stored.metadata() or {}, {key: stored.get_tensor(key) for key in stored.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as error:
        raise DamagedSampler(path, f"not a safetensors file: {first_line(error, 100)}") from None


def load(path: Path, weights_sha256: str, latent_dim: int, name: str | None = None) -> Sampler:
    """A saved sampler (of this name, when given), checked: DamagedSampler for a file that is not what betavae wrote
    or not a usable sampler, StaleSampler for one fitted for other weights (or by an older betavae)."""
    metadata, tensors = read(path)
    version = metadata.get("format", "")
    if version not in {str(v) for v in range(1, FORMAT + 1)}:
        raise DamagedSampler(path, f"format {version!r}, not one this betavae reads")
    if int(version) < FORMAT:
        raise StaleSampler(f"{path} was written by an older betavae, without its own sha256")
    if not checksums.intact(metadata, tensors):
        raise DamagedSampler(path, "its contents do not match the sha256 stored with them: changed since it was "
                                   "written")
    if metadata.get("weights_sha256") != weights_sha256:
        raise StaleSampler(f"{path} was fitted for other weights than the run's model.safetensors; delete it to refit "
                           "(betavae refits it by itself when asked for a sampler)")
    sampler = build(path, metadata, tensors)
    if name is not None and sampler.name != name:
        raise DamagedSampler(path, f"it holds a {sampler.name} sampler, not {name}")
    for label, mixture in sampler.mixtures.items():
        if problem := mixture.problem(latent_dim):
            raise DamagedSampler(path, problem if label == UNCONDITIONAL else f"label {label}: {problem}")
    return sampler


def build(path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> Sampler:
    """The sampler a file describes: a registered kind, three tensors per label, labels that fit the kind."""
    kind = metadata.get("kind")
    if kind not in registry.SAMPLERS:
        raise DamagedSampler(path, f"kind {kind!r} is none of {', '.join(registry.SAMPLERS)}")
    cls = registry.SAMPLERS[kind]
    try:
        settings = json.loads(metadata.get("settings", ""))
    except ValueError:
        settings = None
    if not isinstance(settings, dict):
        raise DamagedSampler(path, "its settings are not a JSON object")
    try:
        labels = sorted({int(key.split("/")[1]) for key in tensors})
        mixtures = {label: Mixture(*(tensors[f"{field}/{label}"] for field in FIELDS)) for label in labels}
    except (ValueError, IndexError, KeyError) as error:
        raise DamagedSampler(path, f"its tensors are not named weights/LABEL, means/LABEL, scale_tril/LABEL "
                                   f"({first_line(error, 60)})") from None
    if len(tensors) != len(FIELDS) * len(labels):
        raise DamagedSampler(path, "it holds tensors a sampler does not have")
    if not labels or (cls.by_label and min(labels) < 0) or (not cls.by_label and labels != [UNCONDITIONAL]):
        raise DamagedSampler(path, f"labels {labels[:5]} do not fit a {kind} sampler")
    return cls(mixtures, settings)
