"""What every sampler is: one Gaussian mixture per label it draws by (or one, under UNCONDITIONAL, when it draws
without a label) and the settings it was fitted with. A subclass says what it is fitted to, how it is captioned and
named in figures, and whether it draws by label; everything else (drawing, grids, what the report's explorer gets)
is shared here, so callers ask the object instead of testing its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from ..errors import BetaVAEError
from .mixture import Mixture, fit_mixture

UNCONDITIONAL = -1  # the key of a sampler's one mixture when it draws without a label
GRID = 64  # codes in the figure of a sampler that draws without a label


class Codes(Protocol):
    """The codes of a run's training images a sampler is fitted to (betavae.runs.TrainingCodes)."""

    means: np.ndarray
    samples: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Draw:
    """Codes for a grid of samples: z (N, D), images per row, what the codes are, and the label asked of each
    code (None when the sampler draws without labels)."""

    z: torch.Tensor
    ncol: int
    caption: str
    labels: torch.Tensor | None = None


class Sampler:
    """A fitted sampler. Subclasses set the class attributes and `points`, and may refine `fit` and `caption`."""

    name: ClassVar[str]  # what --sampler and the report call it
    help: ClassVar[str]  # one line for `betavae sample --help` and the report
    source: ClassVar[str]  # what its codes are, for captions: "z ~ N(0,I)"
    by_label: ClassVar[bool] = False  # draws the codes of one label at a time
    fitted: ClassVar[bool] = True  # fitted to a run's codes and saved under RUN/samplers/ (the prior is neither)
    default_components: ClassVar[int] = 1  # mixture components (per label, for a sampler that draws by label)

    def __init__(self, mixtures: dict[int, Mixture], settings: dict[str, Any] | None = None):
        self.mixtures, self.settings = mixtures, settings or {}

    # --- fitting ----------------------------------------------------------------------------------------------
    @classmethod
    def points(cls, codes: Codes) -> np.ndarray:
        """The codes it is fitted to: posterior draws or posterior means."""
        return codes.samples

    @classmethod
    def unfit_reason(cls, labels: np.ndarray) -> str | None:
        """Why it cannot be fitted to training images of these labels (-1: unlabelled), or None."""
        return None if len(labels) >= 2 else f"a mixture needs at least 2 training images, the run has {len(labels)}"

    @classmethod
    def fit(cls, points: np.ndarray, labels: np.ndarray | None = None, components: int | None = None,
            covariance: str = "full", seed: int = 0) -> "Sampler":
        """Fitted to points (N, D) (and their labels, for a sampler that draws by label); by default
        default_components, fewer where there are fewer points; a number asked for is used as it is."""
        count = cls.default_components if components is None else components
        settings = {"components": count, "covariance": covariance, "seed": seed}
        mixtures = {}
        for label, group in cls.groups(points, labels, components).items():
            k = min(count, max(1, len(group))) if components is None else count
            mixtures[label] = fit_mixture(group, k, covariance, seed)
        return cls(mixtures, settings)

    @classmethod
    def groups(cls, points: np.ndarray, labels: np.ndarray | None, components: int | None
               ) -> dict[int, np.ndarray]:
        """The points of each mixture it fits: all of them, under UNCONDITIONAL."""
        return {UNCONDITIONAL: points}

    # --- drawing ----------------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[int]:
        """The labels it draws by (none for a sampler that draws without a label)."""
        return sorted(k for k in self.mixtures if k != UNCONDITIONAL)

    def mixture(self, label: int | None = None) -> Mixture:
        """The mixture that draws codes of this label (None: the sampler's one mixture)."""
        if label is not None:
            raise BetaVAEError(f"the {self.name} sampler draws without a label; leave out --digit (label=)")
        return self.mixtures[UNCONDITIONAL]

    def draw(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        """n latent codes (float32), of the given label for a sampler that draws by label."""
        return self.mixture(label).draw(n, generator).float()

    def grid(self, n: int, generator: torch.Generator, label: int | None = None) -> Draw:
        """The codes of a figure of n samples, 8 to a row."""
        asked = None if label is None else torch.full((n,), label)
        return Draw(self.draw(n, generator, label), min(n, 8), self.caption(label), asked)

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Codes for model.sample(n, sampler=...): those of grid(n)."""
        return self.grid(n, generator).z

    @property
    def figure_size(self) -> int:
        """How many samples the figure training draws of it holds."""
        return GRID

    # --- how it is shown --------------------------------------------------------------------------------------
    @classmethod
    def caption(cls, label: int | None = None) -> str:
        """What a grid of its codes shows."""
        return cls.source

    @classmethod
    def figure_name(cls, label: int | None = None) -> str:
        """The file name (without .png) of its figure under RUN/figures/: samples_NAME[_LABEL]."""
        return "_".join(["samples", cls.name, *([] if label is None else [str(label)])])

    def explorer(self) -> dict[str, Any]:
        """What the report's explorer draws from: its name and help, the labels it draws by (none: one mixture)
        and its mixtures, one per label in that order."""
        keys = self.labels or [UNCONDITIONAL]
        return {"name": self.name, "help": self.help, "labels": [str(k) for k in self.labels],
                "mixtures": [self.mixtures[k].to_json() for k in keys]}
