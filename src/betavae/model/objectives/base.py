"""What every objective shares: the loss terms and their one reduction, the settings contract, and the hooks a
variant overrides. Every objective's loss is

    recon   = mean over the batch of -log p(x | z) summed over pixels                      (nats per image)
    kl      = mean over the batch of KL(q(z|x) || N(0, I)) summed over latent dimensions   (nats per image)
    loss    = recon + penalty(...)        (beta-VAE: penalty = beta * kl; beta = 1 is the plain VAE's -ELBO)

Because both terms are per-image sums averaged over the batch, a weight means the same thing at any image size,
batch size or number of processes. A variant overrides `penalty` (what it adds to recon) and, where it needs them,
`posterior` (how posteriors are combined before the draw), `after_step` (training its own parts) and `state_dict`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch

from ...errors import BetaVAEError
from ..decoders import Likelihood, bernoulli_nll

Step = int | torch.Tensor  # the optimizer step; a 0-dim tensor inside a CUDA graph


@dataclass
class Terms:
    """The loss to minimise and what it is made of (batch means, in nats per image), with the objective's own
    estimates (TC, a penalty, ...) in `extras`, which training logs beside the terms."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def detach(self) -> "Terms":
        """The same values, cut from the autograd graph (which can then be freed)."""
        return Terms(self.loss.detach(), self.recon.detach(), self.kl.detach(), self.kl_per_dim.detach(),
                     {key: value.detach() for key, value in self.extras.items()})


def setting(default: Any, help: str) -> Any:
    """A settings field with its default and the one line `--help` and the docs show for it."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """An objective's own settings: frozen, its paper's defaults, validated on construction by `check`."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse values the objective cannot use (each subclass names its own)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


MAX_STEPS = 10**12  # a schedule's steps: far above any run, so that a typo (1e30) is one line, not an overflow
MAX_WEIGHT = 1e6  # a weight or a capacity in nats: papers use at most 10^3; 1e300 would overflow the loss, not train


def check_weights(settings: Settings, *names: str) -> None:
    """Each named setting is a number from 0 to MAX_WEIGHT (a whole number of steps: to MAX_STEPS)."""
    for name in names:
        value = getattr(settings, name)
        high = MAX_STEPS if isinstance(value, int) else MAX_WEIGHT
        if isinstance(value, bool) or not (0 <= value <= high and math.isfinite(value)):
            raise BetaVAEError(f"{name} must be a number from 0 to {high:g}, got {value}; fix "
                               f"--{name.replace('_', '-')}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BetaVAEError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


class Context(NamedTuple):
    """What an objective may need to know of its run besides its settings."""

    latent_dim: int = 10
    dataset_size: int = 1  # training images (beta-TCVAE's estimate of q(z) needs it)
    seed: int = 0  # seeds an objective's own parts (FactorVAE's discriminator)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per image and dimension, shape (N, D)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def linear_anneal(start: float, end: float, step: Step, steps: int) -> float | torch.Tensor:
    """A value moving linearly from start to end over `steps` steps, then staying at end (end at once if steps = 0).
    `step` may be a 0-dim tensor: a CUDA graph replays the loss with the step filled in (cuda_graphs.py)."""
    if steps <= 0:
        return end
    done = step.clamp(max=steps) if isinstance(step, torch.Tensor) else min(step, steps)
    return start + (end - start) * done / steps


Penalty = tuple[torch.Tensor, dict[str, torch.Tensor]]


class Objective:
    """recon + penalty. A subclass names itself, its settings class and its paper, and implements `penalty`."""

    name: ClassVar[str]
    Settings: ClassVar[type[Settings]]
    paper: ClassVar[str]  # whose objective it is, shown by --help and the docs
    graphable: ClassVar[bool] = True  # its step can be replayed as a CUDA graph (no host work of its own)
    distributable: ClassVar[bool] = True  # DDP may split its batches between processes
    paired: ClassVar[bool] = False  # trains on pairs of images that share factors (weak supervision)
    needs_codes: ClassVar[bool] = False  # its penalty estimates q(z) from the codes z drawn for the batch
    min_batch: ClassVar[int] = 1  # its penalty is estimated across the batch (q(z), a covariance): needs this many

    def __init__(self, settings: Settings | None = None, context: Context = Context()):
        self.settings = settings if settings is not None else self.Settings()
        if not isinstance(self.settings, self.Settings):
            raise TypeError(f"{type(self).__name__} takes {self.Settings.__name__}, got {type(self.settings).__name__}")
        self.context = context

    @classmethod
    def with_settings(cls, **values: Any) -> "Objective":
        """The objective with some settings changed from its defaults, e.g. BetaVAELoss.with_settings(beta=4)."""
        return cls(cls.Settings(**values))

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                 step: Step = 0, z: torch.Tensor | None = None, likelihood: Likelihood | None = None) -> Terms:
        """The terms of a batch from its decoded outputs (`likelihood`'s parameters: Bernoulli logits unless given),
        targets, posteriors and the codes z drawn from them."""
        if z is None and self.needs_codes:
            raise BetaVAEError(f"the {self.name} objective estimates q(z) from the batch's codes; pass z")
        recon = (likelihood.nll(logits, target) if likelihood is not None else bernoulli_nll(logits, target)).mean()
        kl_per_dim = gaussian_kl(mean, logvar).mean(0)
        penalty, extras = self.penalty(kl_per_dim, mean, logvar, z, step)
        return Terms(recon + penalty, recon, kl_per_dim.sum(), kl_per_dim, extras)

    def penalty(self, kl_per_dim: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None,
                step: Step) -> Penalty:
        """What the objective adds to recon, and its own estimates to log (batch means, nats per image)."""
        raise NotImplementedError

    def logged(self, step: int) -> dict[str, float]:
        """The schedule's values at a step (a KL weight, a capacity), recorded with each epoch."""
        return {}

    def describe(self) -> str:
        """The loss in one line, with the weights it actually uses."""
        raise NotImplementedError

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posteriors the codes are drawn from: the encoder's, unchanged."""
        return mean, logvar

    def after_step(self) -> None:
        """Called after each optimizer step of the model: nothing to train here."""

    def to(self, device: torch.device | str) -> "Objective":
        """Its own parts moved to the model's device: none here."""
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
