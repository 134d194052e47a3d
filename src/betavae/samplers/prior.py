"""The prior N(0, I): what the KL term pulls the posteriors towards, and what the decoder is asked to decode when
nothing is fitted. The default sampler everywhere (`betavae sample`, `Run.sample`, `samplers.for_run`)."""

from __future__ import annotations

import numpy as np

from ..errors import BetaVAEError
from .base import UNCONDITIONAL, Sampler
from .mixture import standard_normal


class PriorSampler(Sampler):
    """z ~ N(0, I): nothing to fit or save; its draws are exactly torch.randn's."""

    name = "prior"
    help = "N(0, I), the VAE's prior"
    source = "z ~ N(0,I)"
    fitted = False

    @classmethod
    def fit(cls, points: np.ndarray, labels: np.ndarray | None = None, components: int | None = None,
            covariance: str = "full", seed: int = 0) -> "PriorSampler":
        """N(0, I) in as many latents as the points have (there may be none of them)."""
        if components is not None:
            raise BetaVAEError("--components applies to the fitted samplers; the prior has none")
        return cls({UNCONDITIONAL: standard_normal(points.shape[1])})

    @classmethod
    def unfit_reason(cls, labels: np.ndarray) -> str | None:
        return None

    @classmethod
    def figure_name(cls, label: int | None = None) -> str:
        return "samples"
