"""Gaussian mixtures, the one form every sampler takes (the prior is the one-component mixture N(0, I)): drawing,
fitting with scikit-learn, the form the report embeds, and the checks a mixture read from a file must pass."""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BetaVAEError

COVARIANCES = ("full", "diag", "tied", "spherical")
FIELDS = ("weights", "means", "scale_tril")


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture: component weights (K,), means (K, D), and Cholesky factors of the covariances (K, D, D)."""

    weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n codes (n, D): standard normal noise first, then the component of each draw (independent draws, so a
        grid of samples is shuffled, never grouped by component); N(0, I) gives exactly torch.randn's codes."""
        eps = torch.randn(n, self.means.shape[1], generator=generator).double()  # float32 draws, as torch.randn
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator) \
            if len(self.weights) > 1 else torch.zeros(n, dtype=torch.long)
        return self.means[component] + torch.einsum("nij,nj->ni", self.scale_tril[component], eps)

    def draw_with(self, eps: torch.Tensor, u: float) -> torch.Tensor:
        """The draw for given noise eps (D,) and a uniform u that picks the component by cumulative weight: what
        the report's explorer computes in the page (decoder.js, mixtureDraw)."""
        cumulative = torch.cumsum(self.weights, 0) / self.weights.sum()
        k = min(int(torch.searchsorted(cumulative, torch.tensor(u, dtype=cumulative.dtype), right=True)),
                len(self.weights) - 1)
        return self.means[k] + self.scale_tril[k] @ eps.double()

    def to_json(self) -> dict[str, Any]:
        """The mixture for the report: weights as numbers, means and Cholesky factors as base64 float32."""
        encode = lambda t: base64.b64encode(t.numpy().astype("<f4").tobytes()).decode()  # noqa: E731
        return {"weights": self.weights.tolist(), "dim": self.means.shape[1], "means": encode(self.means),
                "scale_tril": encode(self.scale_tril)}

    def problem(self, latent_dim: int) -> str | None:
        """What makes this mixture unusable for a model of latent_dim latents (None if nothing): the checks a mixture
        read from a file passes before anything is drawn from it."""
        k = len(self.weights) if self.weights.dim() == 1 else 0
        d = self.means.shape[-1] if self.means.dim() == 2 else 0
        if k == 0 or d == 0 or self.means.shape != (k, d) or self.scale_tril.shape != (k, d, d):
            return (f"its tensors of shapes {tuple(self.weights.shape)}, {tuple(self.means.shape)} and "
                    f"{tuple(self.scale_tril.shape)} do not make a Gaussian mixture")
        if self.means.shape[1] != latent_dim:
            return f"it draws codes of {self.means.shape[1]} latents, but the run's model has {latent_dim}"
        tensors = (self.weights, self.means, self.scale_tril)
        if any(t.dtype != torch.float64 for t in tensors):
            return "its tensors are not float64"
        if not all(bool(torch.isfinite(t).all()) for t in tensors):
            return "it holds NaN or infinite numbers"
        if (self.weights < 0).any() or abs(float(self.weights.sum()) - 1) > 1e-6:
            return f"its weights {[round(w, 6) for w in self.weights.tolist()]} are not a distribution (>= 0, sum 1)"
        if not torch.equal(self.scale_tril, self.scale_tril.tril()) or \
                not (torch.diagonal(self.scale_tril, dim1=1, dim2=2) > 0).all():
            return "a covariance is not positive definite (its Cholesky factor is not lower triangular with a " \
                   "positive diagonal)"
        return None


def standard_normal(dim: int) -> Mixture:
    """N(0, I) in dim latents, the prior, as a one-component mixture."""
    return Mixture(torch.ones(1, dtype=torch.float64), torch.zeros(1, dim, dtype=torch.float64),
                   torch.eye(dim, dtype=torch.float64)[None])


def fit_mixture(points: np.ndarray, components: int, covariance: str = "full", seed: int = 0) -> Mixture:
    """scikit-learn's Gaussian mixture fitted to points (N, D), as full Cholesky factors whatever the covariance
    type; one-line errors for an impossible number of components."""
    from sklearn.mixture import GaussianMixture

    if components < 1:
        raise BetaVAEError(f"--components must be at least 1, got {components}")
    if components > len(points):
        raise BetaVAEError(f"--components {components} is more than the {len(points)} points to fit; lower it")
    if len(points) < 2:
        raise BetaVAEError(f"a Gaussian cannot be fitted to {len(points)} point; it needs at least 2 training images "
                           "(of each label, for the class sampler)")
    if covariance not in COVARIANCES:
        raise BetaVAEError(f"unknown covariance {covariance!r}; choose one of: {', '.join(COVARIANCES)}")
    from sklearn.exceptions import ConvergenceWarning

    gmm = GaussianMixture(components, covariance_type=covariance, random_state=seed, reg_covar=1e-5)
    with warnings.catch_warnings():  # codes that collapsed to fewer clusters than components still give a mixture
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(np.asarray(points, dtype=np.float64))
    k, d = gmm.means_.shape
    covariances = {"full": lambda c: c, "tied": lambda c: np.broadcast_to(c, (k, d, d)),
                   "diag": lambda c: np.stack([np.diag(row) for row in c]),
                   "spherical": lambda c: np.stack([np.eye(d) * v for v in c])}[covariance](gmm.covariances_)
    return Mixture(torch.from_numpy(gmm.weights_.copy()), torch.from_numpy(gmm.means_.copy()),
                   torch.linalg.cholesky(torch.from_numpy(np.array(covariances))))
