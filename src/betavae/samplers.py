"""Where generated images come from: a sampler draws the latent codes z that the decoder turns into images.

- `prior`: z ~ N(0, I), what the KL term pulls the posteriors towards.
- `gmm`: a Gaussian mixture fitted, after training, to codes of the training images drawn from their posteriors, the
  codes the decoder was trained on (after Ghosh et al. 2020, "From variational to deterministic autoencoders", who fit
  the means). The aggregate posterior is not N(0, I), so prior draws land where the decoder saw little; the mixture
  follows where the codes really are.
- `class`: one small mixture per label, fitted to that label's posterior means, so a user can ask for a digit.

Each is a set of Gaussian mixtures (the prior is the one-component mixture N(0, I)), so one routine draws from all.
A fitted sampler is kept in RUN/samplers/ as safetensors (no pickle) together with the sha256 of the weights it was
fitted for: it is reused while they stay, refitted when they change, and never loaded for other weights.
"""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from . import atomic
from .errors import BetaVAEError, first_line
from .runs import Run
from .training import folder

KINDS = ("prior", "gmm", "class")
COVARIANCES = ("full", "diag", "tied", "spherical")
UNCONDITIONAL = -1  # the key of a sampler's one mixture when it has no labels
# 20 for the whole aggregate posterior: against 10 (pythae's GaussianMixtureSampler), a Fréchet distance a quarter lower
# at no cost in recall; 3 per label, against 1: on the description run every digit's samples are then classified as
# that digit at least 90% of the time (docs/samplers.md, bench/samplers.py)
DEFAULT_COMPONENTS = {"gmm": 20, "class": 3}
FORMAT = 1


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


def standard_normal(dim: int) -> Mixture:
    return Mixture(torch.ones(1, dtype=torch.float64), torch.zeros(1, dim, dtype=torch.float64),
                   torch.eye(dim, dtype=torch.float64)[None])


def prior_sampler(dim: int) -> Sampler:
    """N(0, I) as a sampler: nothing to fit."""
    return Sampler("prior", {UNCONDITIONAL: standard_normal(dim)}, {})


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


@dataclass(frozen=True)
class Sampler:
    """A fitted sampler: its kind, its settings, and one mixture per label (UNCONDITIONAL when it has no labels)."""

    kind: str
    mixtures: dict[int, Mixture]
    settings: dict[str, Any]

    @property
    def labels(self) -> list[int]:
        return sorted(k for k in self.mixtures if k != UNCONDITIONAL)

    def draw(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        """n latent codes (float32); for `class`, of the given label (required)."""
        if self.kind == "class":
            if label is None:
                raise BetaVAEError("the class sampler draws one label at a time; give --digit LABEL")
            if label not in self.mixtures:
                raise BetaVAEError(f"--digit {label} is not one of this run's labels ({', '.join(map(str, self.labels))})")
            return self.mixtures[label].draw(n, generator).float()
        if label is not None:
            raise BetaVAEError(f"--digit needs the class sampler (--sampler class), not {self.kind}")
        return self.mixtures[UNCONDITIONAL].draw(n, generator).float()

    def draw_per_label(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """For `class`: ceil(n / labels) codes of each label, label after label, and the label of each code."""
        each = max(1, -(-n // len(self.labels)))
        z = torch.cat([self.draw(each, generator, label) for label in self.labels])
        return z, torch.tensor(self.labels).repeat_interleave(each)

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Codes for model.sample(n, sampler=...): n unconditional draws, or for `class` an equal share of every
        label (n rounded up to a whole share each)."""
        return self.draw_per_label(n, generator)[0] if self.kind == "class" else self.draw(n, generator)


# --- fitting, saving and loading ---------------------------------------------------------------------------------
def fit_sampler(kind: str, codes: np.ndarray, labels: np.ndarray | None = None, components: int | None = None,
                covariance: str = "full", seed: int = 0) -> Sampler:
    """Fit a sampler to codes (N, D) (and their labels, for `class`). Components: by default 20 for gmm and
    3 per label for class, fewer where there are fewer points; a number asked for is used as it is."""
    default = components is None
    components = DEFAULT_COMPONENTS.get(kind, 1) if default else components
    settings = {"components": components, "covariance": covariance, "seed": seed}
    fewer = lambda points: min(components, max(1, len(points))) if default else components  # noqa: E731
    if kind == "prior":
        return prior_sampler(codes.shape[1])
    if kind == "gmm":
        return Sampler(kind, {UNCONDITIONAL: fit_mixture(codes, fewer(codes), covariance, seed)}, settings)
    if kind != "class":
        raise BetaVAEError(f"unknown sampler {kind!r}; choose one of: {', '.join(KINDS)}")
    if labels is None or len(labels) == 0 or (labels < 0).any():
        raise BetaVAEError("the class sampler needs labelled training images; this run's data have no labels "
                           "(use --sampler gmm)")
    values, counts = np.unique(labels, return_counts=True)
    if not default and components > counts.min():
        raise BetaVAEError(f"--components {components} is more than the {counts.min()} training images of label "
                           f"{values[counts.argmin()]}; lower it")
    return Sampler(kind, {int(y): fit_mixture(codes[labels == y], fewer(codes[labels == y]), covariance, seed)
                          for y in values}, settings)


def weights_digest(run: Run) -> str:
    """sha256 of the run's model.safetensors: what a saved sampler was fitted for."""
    try:
        return hashlib.sha256((run.path / folder.WEIGHTS).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise BetaVAEError(f"{run.path} has no {folder.WEIGHTS}; train it first") from None


def sampler_path(run: Run, kind: str, components: int | None, covariance: str) -> Path:
    return run.path / "samplers" / f"{kind}-{components or 'default'}-{covariance}.safetensors"


def save(sampler: Sampler, path: Path, digest: str) -> None:
    tensors = {f"{name}/{label}": getattr(mixture, name).contiguous()
               for label, mixture in sampler.mixtures.items() for name in ("weights", "means", "scale_tril")}
    metadata = {"format": str(FORMAT), "kind": sampler.kind, "settings": json.dumps(sampler.settings),
                "weights_sha256": digest}
    atomic.write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))


def load(path: Path, digest: str) -> Sampler:
    """A saved sampler, refused with one line when it was fitted for other weights or is not a sampler file."""
    try:
        with safe_open(str(path), framework="pt") as stored:
            meta = stored.metadata() or {}
            tensors = {key: stored.get_tensor(key) for key in stored.keys()}
        if int(meta["format"]) > FORMAT:
            raise ValueError(f"format {meta['format']}, newer than this betavae reads")
        kind, settings = meta["kind"], json.loads(meta["settings"])
        labels = sorted({int(key.split("/")[1]) for key in tensors})
        mixtures = {label: Mixture(*(tensors[f"{name}/{label}"] for name in ("weights", "means", "scale_tril")))
                    for label in labels}
    except (SafetensorError, OSError, KeyError, ValueError, IndexError, TypeError) as error:
        raise BetaVAEError(f"{path} is not a betavae sampler ({first_line(error, 120)}); delete it to refit") from None
    if meta.get("weights_sha256") != digest:
        raise BetaVAEError(f"{path} was fitted for other weights than the run's model.safetensors; delete it to "
                           "refit (betavae refits it by itself when asked for a sampler)")
    return Sampler(kind, mixtures, settings)


def for_run(run: Run, kind: str = "gmm", components: int | None = None, covariance: str = "full") -> Sampler:
    """The run's sampler of this kind: loaded when fitted for the current weights, else fitted on the codes of (at
    most runs.FIT_IMAGES of) the training images and saved. Components: 20 for gmm, 3 per label for class."""
    if kind == "prior":
        return prior_sampler(run.config.latent_dim)
    path, digest = sampler_path(run, kind, components, covariance), weights_digest(run)
    if path.is_file():
        try:
            return load(path, digest)
        except BetaVAEError:
            pass  # fitted for earlier weights: refit below
    codes = run.training_codes
    if kind == "class" and (len(codes.labels) == 0 or (codes.labels < 0).any()):
        raise BetaVAEError(f"{run.path} was trained on data without labels, so it cannot sample a chosen label; "
                           "use --sampler gmm")
    # gmm follows the codes the decoder was trained on (posterior draws): fitted to the means alone, it is narrower,
    # and loses variety (recall); class follows each label's means, its most typical codes, so that a requested digit
    # comes out as that digit (docs/samplers.md measures both choices)
    points = codes.samples if kind == "gmm" else codes.means
    sampler = fit_sampler(kind, points, codes.labels, components, covariance, run.config.seed)
    save(sampler, path, digest)
    return sampler


def fitted_kinds(run: Run) -> list[str]:
    """The samplers a run's figures and report show: prior and gmm, and class for labelled data, those that can be
    fitted (a mixture needs 2 training images, of each label for class)."""
    labels = run.training_sample.labels.numpy()  # of the images the samplers are fitted to (no encoding needed)
    kinds = ["prior"] + (["gmm"] if len(labels) >= 2 else [])
    if len(labels) and (labels >= 0).all() and np.unique(labels, return_counts=True)[1].min() >= 2:
        kinds.append("class")
    return kinds


def explorer_samplers(run: Run) -> dict[str, Any]:
    """The mixtures the report's explorer draws from: prior, gmm, and one per label for labelled data."""
    out: dict[str, Any] = {}
    for kind in fitted_kinds(run):
        mixtures = for_run(run, kind).mixtures
        out[kind] = {str(label): m.to_json() for label, m in mixtures.items()} if kind == "class" \
            else mixtures[UNCONDITIONAL].to_json()
    return out
