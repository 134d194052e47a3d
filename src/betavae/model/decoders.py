"""What the decoder's output means: one class per likelihood p(x | z), registered by the name `--likelihood` takes.

Each says how many output channels it needs per image channel, the negative log-likelihood of targets in nats per
image (summed over pixels, so beta keeps its meaning), the mean image in [0, 1] (what figures show), a draw, and
whether it is discrete: then the negative ELBO is a true -log p(x) bound and bits per dimension compare across models.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BetaVAEError

LOG_2PI = math.log(2 * math.pi)
LEVELS = 255  # the discretized logistic's bins: 8-bit pixels k / 255
SMALL_LOGIT = 0.1  # below this |logit| the continuous Bernoulli's formulas cancel; their series are exact to 1e-9 there


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(target | logits) summed over pixels, one value per image (binary cross-entropy; grey targets allowed)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


class Likelihood(nn.Module):
    """A decoder distribution. Output (N, outputs * C, H, W) for images (N, C, H, W); parameters are the model's."""

    name: ClassVar[str]
    title: ClassVar[str]  # how captions name it: "Bernoulli means"
    outputs: ClassVar[int] = 1  # output channels per image channel
    discrete: ClassVar[bool] = False  # a probability of 8-bit or binary pixels, not a density on [0, 1]
    meaning: ClassVar[str]  # what its negative ELBO is, for evaluations

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def nll(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-log p(target | output) in nats, summed over each image's pixels: shape (N,)."""
        raise NotImplementedError

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        """The mean image in [0, 1], (N, C, H, W) (for the Gaussian its location, clamped: its mean where its mass lies
        inside [0, 1])."""
        raise NotImplementedError

    def sample(self, output: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of every pixel, in [0, 1]."""
        raise NotImplementedError

    def initial_output(self, mean_image: torch.Tensor) -> torch.Tensor:
        """The output (outputs * C, H, W) whose mean is the data's mean image: where the decoder's biases start."""
        return mean_image.clamp(0, 1)

    def log_likelihoods(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """log p(x_b | z_kb) for K decodings (K, B, ...) of each of B targets: shape (K, B) (the IWAE bound's)."""
        k, b = outputs.shape[:2]
        return -self.nll(outputs.flatten(0, 1), target.expand(k, *target.shape).flatten(0, 1)).view(k, b)

    def is_likelihood(self, pixels: str) -> bool:
        """Whether its negative ELBO bounds -log p(x) of the targets (then bits/dim compare across models)."""
        return self.discrete


class Bernoulli(Likelihood):
    """Pixels are 0/1 draws with probability sigmoid(output): a likelihood of binary images (grey targets are allowed
    as the cross-entropy, which is then not one)."""

    name = "bernoulli"
    title = "Bernoulli"
    discrete = True
    meaning = "-log p(x) of binary pixels; on grey levels a cross-entropy, not a likelihood"

    def nll(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bernoulli_nll(output, target)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(output)

    def sample(self, output: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(output), generator=generator)

    def initial_output(self, mean_image: torch.Tensor) -> torch.Tensor:
        return torch.logit(mean_image.clamp(1e-3, 1 - 1e-3))

    def log_likelihoods(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # sum_j x_j l_j - softplus(l_j): the first sum as a batched matrix product (half the time of the elementwise
        # form, and no outputs-sized temporary)
        logits = outputs.flatten(2)
        return torch.einsum("nbp,bp->nb", logits, target.flatten(1)) - F.softplus(logits).sum(-1)

    def is_likelihood(self, pixels: str) -> bool:
        return pixels == "binary"


class Gaussian(Likelihood):
    """Pixels ~ N(output, sigma^2) with sigma fixed at 0.1: the squared error over 2 sigma^2, plus a constant."""

    name = "gaussian"
    title = "Gaussian"
    meaning = "-log of a density on [0, 1] (Gaussian); not a probability, not comparable with discrete likelihoods"
    SIGMA = 0.1

    def log_sigma(self) -> torch.Tensor:
        """log sigma per channel, shaped to broadcast over (N, C, H, W)."""
        return torch.full((self.channels, 1, 1), math.log(self.SIGMA))

    def nll(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_sigma = self.log_sigma().to(output)
        error = (target - output) * torch.exp(-log_sigma)
        return (0.5 * error.pow(2) + log_sigma + 0.5 * LOG_2PI).flatten(1).sum(1)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        return output.clamp(0, 1)

    def sample(self, output: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(output.shape, generator=generator, device=output.device, dtype=output.dtype)
        return (output + noise * self.log_sigma().to(output).exp()).clamp(0, 1)


class LearnedGaussian(Gaussian):
    """Pixels ~ N(output, sigma_c^2) with one learned sigma per image channel (a model parameter, from 0.1; at
    least 0.001, so that the density stays bounded)."""

    name = "gaussian-learned"
    MIN_LOG_SIGMA = math.log(1e-3)

    def __init__(self, channels: int):
        super().__init__(channels)
        self.raw_log_sigma = nn.Parameter(torch.full((channels, 1, 1), math.log(self.SIGMA)))

    def log_sigma(self) -> torch.Tensor:
        return self.raw_log_sigma.clamp(min=self.MIN_LOG_SIGMA)


class DiscretizedLogistic(Likelihood):
    """8-bit pixels k/255 from a logistic of mean mu and scale s, binned (Salimans et al. 2017, PixelCNN++'s single
    component): P(k) = F(k/255 + 1/510) - F(k/255 - 1/510), the first and last bins open to -inf and +inf. The output
    holds the means (first C channels) and the log-scales (last C, at least -7)."""

    name = "logistic"
    title = "discretized-logistic"
    outputs = 2
    discrete = True
    meaning = "-log P(x) of 8-bit pixels (discretized logistic)"
    MIN_LOG_SCALE = -7.0

    def split(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-scales, (N, C, H, W) each."""
        mu, log_scale = output.split(self.channels, dim=1)
        return mu, log_scale.clamp(min=self.MIN_LOG_SCALE)

    def log_probabilities(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """log P(k) per pixel of the targets, each rounded to its bin k/255."""
        mu, log_scale = self.split(output)
        x = torch.round(target * LEVELS) / LEVELS
        inverse_scale = torch.exp(-log_scale)
        upper = (x - mu + 0.5 / LEVELS) * inverse_scale
        lower = (x - mu - 0.5 / LEVELS) * inverse_scale
        # log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - e^(b - a)): exact and stable
        inner = -F.softplus(-upper) - F.softplus(lower) + torch.log(-torch.expm1(-inverse_scale / LEVELS))
        first = -F.softplus(-upper)  # log F(upper edge of bin 0)
        last = -F.softplus(lower)  # log (1 - F(lower edge of bin 255))
        return torch.where(x < 0.5 / LEVELS, first, torch.where(x > 1 - 0.5 / LEVELS, last, inner))

    def nll(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -self.log_probabilities(output, target).flatten(1).sum(1)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        """The binned distribution's own mean, sum_k k/255 P(k) = 1 - (1/255) sum_k F((k - 1/2) / 255), k = 1..255:
        not mu, which training drives below 0 or above 1 where pixels sit in an open edge bin."""
        mu, log_scale = self.split(output)
        inverse_scale = torch.exp(-log_scale)
        below = torch.zeros_like(mu)
        for k in range(1, LEVELS + 1):
            below += torch.sigmoid(((k - 0.5) / LEVELS - mu) * inverse_scale)
        return 1 - below / LEVELS

    def sample(self, output: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, log_scale = self.split(output)
        u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype).clamp(1e-6, 1 - 1e-6)
        x = mu + log_scale.exp() * torch.logit(u)
        return (torch.round(x * LEVELS) / LEVELS).clamp(0, 1)

    def initial_output(self, mean_image: torch.Tensor) -> torch.Tensor:
        return torch.cat([mean_image.clamp(0, 1), torch.full_like(mean_image, math.log(0.05))])


class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli (Loaiza-Ganem and Cunningham 2019): the Bernoulli formula as a density on [0, 1],
    normalised by C(l) = l / tanh(l / 2) for logit l (= 2 at l = 0). Its mean is not sigmoid(l)."""

    name = "continuous-bernoulli"
    title = "continuous-Bernoulli"
    meaning = "-log of a density on [0, 1] (continuous Bernoulli); not a probability, not comparable with discrete " \
              "likelihoods"

    def nll(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bernoulli_nll(output, target) - log_normaliser(output).flatten(1).sum(1)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        small = output.abs() < SMALL_LOGIT
        safe = torch.where(small, torch.ones_like(output), output)
        exact = 0.5 + 0.5 / torch.tanh(safe / 2) - 1 / safe  # sigmoid(l) / tanh(l / 2) - 1 / l
        return torch.where(small, 0.5 + output / 12 - output.pow(3) / 720, exact).clamp(0, 1)

    def sample(self, output: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The inverse CDF at a uniform u: log(1 + u (e^l - 1)) / l, written so that no exponential overflows."""
        u = torch.rand(output.shape, generator=generator, device=output.device, dtype=output.dtype)
        small = output.abs() < 1e-4
        safe = torch.where(small, torch.ones_like(output), output)
        positive = 1 + torch.log(u + (1 - u) * torch.exp(-safe.abs())) / safe  # the form for l > 0
        negative = torch.log1p(u * torch.expm1(-safe.abs())) / safe
        return torch.where(small, u, torch.where(output > 0, positive, negative)).clamp(0, 1)


def log_normaliser(logits: torch.Tensor) -> torch.Tensor:
    """log C(l) = log(l / tanh(l / 2)) per pixel, by its series log 2 + l^2/12 - 7 l^4/1440 near l = 0."""
    small = logits.abs() < SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe / torch.tanh(safe / 2))
    series = math.log(2) + logits.pow(2) / 12 - 7 * logits.pow(4) / 1440
    return torch.where(small, series, exact)


LIKELIHOODS: dict[str, type[Likelihood]] = {kind.name: kind for kind in
                                            (Bernoulli, Gaussian, LearnedGaussian, DiscretizedLogistic,
                                             ContinuousBernoulli)}
HELP = ("the decoder's distribution of pixels: bernoulli (binary or grey images), gaussian (sigma 0.1), "
        "gaussian-learned (a sigma per channel), logistic (discretized, 8-bit pixels: a true likelihood in bits/dim), "
        "continuous-bernoulli")


def build(name: str, channels: int) -> Likelihood:
    """The likelihood of that name for images of `channels` channels."""
    if name not in LIKELIHOODS:
        raise BetaVAEError(f"unknown likelihood {name!r}; choose one of: {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](channels)


def check_data(name: str, images: torch.Tensor, chunk: int = 8192) -> None:
    """Refuse the discretized logistic on images that are not 8-bit (levels other than k/255), in one line."""
    if name != DiscretizedLogistic.name or not images.is_floating_point() or getattr(images, "eight_bit", False):
        return  # uint8 storage (data/arrays.py) is 8-bit by construction
    for start in range(0, len(images), chunk):
        levels = images[start: start + chunk].float() * LEVELS
        if (levels - levels.round()).abs().max() > 1e-3:
            raise BetaVAEError("the logistic likelihood is of 8-bit pixels (levels k/255), and these images have "
                               "other levels; use --likelihood gaussian or continuous-bernoulli")
