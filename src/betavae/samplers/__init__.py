"""Where generated images come from: a sampler draws the latent codes z that the decoder turns into images.

- `prior` (the default everywhere): z ~ N(0, I), what the KL term pulls the posteriors towards.
- `gmm`: a Gaussian mixture fitted, after training, to posterior draws of the training images' codes.
- `class`: one small mixture per label, fitted to that label's posterior means, so a user can ask for a digit.

Each is a class (base.Sampler) listed in registry.py: adding one is a class and a registry line. A fitted sampler is
kept in RUN/samplers/ as safetensors (store.py: no pickle, its own sha256, checked when read) with the sha256 of the
weights it was fitted for: reused while they stay, fitted again when they change. What each choice rests on:
docs/samplers.md.
"""

from .base import GRID, UNCONDITIONAL, Draw, Sampler
from .gmm import MixtureSampler
from .labelled import ClassSampler
from .mixture import COVARIANCES, Mixture, fit_mixture, standard_normal
from .of_run import (available, default_seed, explorer_samplers, for_run, sample_codes, sample_images,
                     sampler_path, weights_digest)
from .prior import PriorSampler
from .registry import COMPONENTS_HELP, DEFAULT, HELP, NAMES, SAMPLERS, get
from .store import DamagedSampler, StaleSampler, load, save

__all__ = ["COMPONENTS_HELP", "COVARIANCES", "DEFAULT", "GRID", "HELP", "NAMES", "SAMPLERS", "UNCONDITIONAL",
           "ClassSampler", "DamagedSampler", "Draw", "Mixture", "MixtureSampler", "PriorSampler", "Sampler",
           "StaleSampler", "available", "default_seed", "explorer_samplers", "fit_mixture", "for_run", "get", "load",
           "sample_codes", "sample_images", "sampler_path", "save", "standard_normal", "weights_digest"]
