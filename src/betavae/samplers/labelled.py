"""`class`: one small Gaussian mixture per label, fitted to that label's posterior means (its most typical codes),
so that a user can ask for a digit and get that digit. Why means and why 3 components: docs/samplers.md."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import BetaVAEError
from .base import Codes, Draw, Sampler
from .mixture import Mixture

FIGURE_ROW = 10  # samples of each label in the figure training draws


class ClassSampler(Sampler):
    """A mixture per label; draws one label at a time, or a row per label."""

    name = "class"
    help = "a small mixture per label: one label with --digit, else a row per label"
    source = "z from each label's mixture, a row per label"
    by_label = True
    default_components = 3

    @classmethod
    def points(cls, codes: Codes) -> np.ndarray:
        return codes.means

    @classmethod
    def unfit_reason(cls, labels: np.ndarray) -> str | None:
        if len(labels) == 0 or (labels < 0).any():
            return "it was trained on data without labels, so it cannot sample a chosen label; use --sampler gmm"
        values, counts = np.unique(labels, return_counts=True)
        if counts.min() < 2:
            return f"label {values[counts.argmin()]} has {counts.min()} training image; a mixture needs 2 of each"
        return None

    @classmethod
    def groups(cls, points: np.ndarray, labels: np.ndarray | None, components: int | None
               ) -> dict[int, np.ndarray]:
        """The points of each label; one-line errors for data without labels and for too many components."""
        if labels is None or len(labels) == 0 or (labels < 0).any():
            raise BetaVAEError("the class sampler needs labelled training images; this run's data have no labels "
                               "(use --sampler gmm)")
        values, counts = np.unique(labels, return_counts=True)
        if components is not None and components > counts.min():
            raise BetaVAEError(f"--components {components} is more than the {counts.min()} training images of label "
                               f"{values[counts.argmin()]}; lower it")
        return {int(y): points[labels == y] for y in values}

    def mixture(self, label: int | None = None) -> Mixture:
        if label is None:
            raise BetaVAEError("the class sampler draws one label at a time; give --digit LABEL (label=)")
        if label not in self.mixtures:
            raise BetaVAEError(f"--digit {label} is not one of this run's labels ({', '.join(map(str, self.labels))})")
        return self.mixtures[label]

    def grid(self, n: int, generator: torch.Generator, label: int | None = None) -> Draw:
        """Of one label as any sampler's, or without a label a row per label: ceil(n / labels) codes of each, label
        after label."""
        if label is not None:
            return super().grid(n, generator, label)
        each = max(1, -(-n // len(self.labels)))
        z = torch.cat([self.draw(each, generator, y) for y in self.labels])
        return Draw(z, each, self.caption(), torch.tensor(self.labels).repeat_interleave(each))

    @property
    def figure_size(self) -> int:
        return FIGURE_ROW * len(self.labels)

    @classmethod
    def caption(cls, label: int | None = None) -> str:
        return cls.source if label is None else f"z from the mixture of label {label}"
