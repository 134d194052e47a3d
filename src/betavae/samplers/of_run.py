"""The samplers of a run: fitted on first use to the codes of its training images and kept under RUN/samplers/ for
the weights they were fitted for; fitted again when those weights change or the file is damaged (with a warning);
and the codes and images `betavae sample` and `Run.sample` draw from them."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import BetaVAEError, first_line
from ..training import folder, weights
from . import registry, store
from .base import Codes, Draw, Sampler

SEEDS = (-2 ** 63, 2 ** 64)  # the seeds a torch generator takes


class RunLike(Protocol):
    """What the samplers need of a run (betavae.runs.Run, a layer above this package)."""

    path: Path
    config: Any  # latent_dim and seed
    model: Any
    training_sample: Any  # the Split of training images samplers are fitted to
    training_codes: Codes


def weights_digest(run: RunLike) -> str:
    """sha256 of the run's model.safetensors: what a saved sampler was fitted for."""
    try:
        return hashlib.sha256((run.path / folder.WEIGHTS).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise weights.no_weights(run.path) from None
    except OSError as error:
        raise BetaVAEError(f"{run.path / folder.WEIGHTS} cannot be read ({error.strerror}); restore it, or write it "
                           f"again from the checkpoint with: betavae train --resume {run.path}") from None


def sampler_path(run: RunLike, name: str, components: int | None = None, covariance: str = "full") -> Path:
    return run.path / "samplers" / f"{name}-{components or 'default'}-{covariance}.safetensors"


def warn(message: str) -> None:
    print(f"betavae: warning: {message}", file=sys.stderr)


def saved(run: RunLike, name: str, path: Path, digest: str) -> Sampler | None:
    """The sampler kept at path when it was fitted for these weights; None (after a warning if it is damaged) when
    it must be fitted again."""
    if not path.is_file():
        if path.exists() or path.is_symlink():  # a FIFO, a folder or a dangling link: never opened
            warn(f"{path} is not a regular file; fitting the {name} sampler again to replace it")
        return None
    try:
        return store.load(path, digest, run.config.latent_dim, name)
    except store.StaleSampler:
        return None
    except store.DamagedSampler as error:
        warn(f"{path} is damaged ({error.reason}); fitting the {name} sampler again to replace it")
        return None


def for_run(run: RunLike, name: str = registry.DEFAULT, components: int | None = None,
            covariance: str = "full") -> Sampler:
    """The run's sampler of this name: N(0, I) for the prior; for a fitted one, the one kept for the current weights,
    else fitted on the codes of (at most runs.FIT_IMAGES) training images and kept."""
    cls = registry.get(name)
    if not cls.fitted:
        return cls.fit(np.zeros((0, run.config.latent_dim)), components=components)
    path, digest = sampler_path(run, name, components, covariance), weights_digest(run)
    if (sampler := saved(run, name, path, digest)) is not None:
        return sampler
    if reason := cls.unfit_reason(run.training_sample.labels.numpy()):
        raise BetaVAEError(f"{run.path} cannot use the {name} sampler: {reason}")
    codes = run.training_codes
    sampler = cls.fit(cls.points(codes), codes.labels, components, covariance, run.config.seed)
    try:
        store.save(sampler, path, digest)
    except OSError as error:  # a read-only run folder: the sampler is still drawn from
        warn(f"the {name} sampler could not be kept in {path} ({first_line(error, 80)}); it is fitted again next time")
    return sampler


def available(run: RunLike) -> list[str]:
    """The samplers a run's figures, evaluation and report show: those that need no fitting, and those its training
    images can be fitted to (for a mixture, 2 images at least, of each label for class)."""
    labels = run.training_sample.labels.numpy()
    return [name for name, cls in registry.SAMPLERS.items() if cls.unfit_reason(labels) is None]


def explorer_samplers(run: RunLike) -> list[dict[str, Any]]:
    """What the report's explorer draws from: each available sampler's own description (Sampler.explorer)."""
    return [for_run(run, name).explorer() for name in available(run)]


MAX_DRAWS = 100_000  # images one call decodes (a 10^9 would ask the allocator for gigabytes, deep inside torch)


def default_seed(run: RunLike) -> int:
    """The seed of the samples training draws, and of `betavae sample` without --seed."""
    return run.config.seed + 2


def sample_codes(run: RunLike, n: int, name: str = registry.DEFAULT, label: int | None = None,
                 seed: int | None = None, components: int | None = None) -> Draw:
    """The codes `betavae sample` decodes: n draws of the named sampler from seed (default default_seed), of one
    label, or, for a sampler that draws by label and no label given, a row per label."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_DRAWS:
        raise BetaVAEError(f"--n must be a whole number from 1 to {MAX_DRAWS:,}, got {n!r} (draw more in several "
                           "calls, each with its own seed)")
    if label is not None and not registry.get(name).by_label:
        raise BetaVAEError(f"--digit needs --sampler {' or '.join(registry.by_label())} (got --sampler {name})")
    seed = default_seed(run) if seed is None else seed
    if not SEEDS[0] <= seed < SEEDS[1]:
        raise BetaVAEError(f"--seed must be at least -2^63 and below 2^64, got {seed}")
    return for_run(run, name, components).grid(n, torch.Generator().manual_seed(seed), label)


@torch.no_grad()
def sample_images(run: RunLike, n: int, name: str = registry.DEFAULT, label: int | None = None,
                  seed: int | None = None, components: int | None = None) -> torch.Tensor:
    """The images (N, C, H, W) in [0, 1] (the likelihood's means) of sample_codes, on the CPU."""
    z = sample_codes(run, n, name, label, seed, components).z
    return run.model.decode_mean(z.to(next(run.model.parameters()).device)).cpu()
